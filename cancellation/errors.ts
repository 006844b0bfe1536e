import { defineErrors } from '../errors/index.ts'

export const CancellationErrors = defineErrors({
  FICUS_ERR_REQUEST_CANCELLED: { statusCode: 503, message: 'The request was cancelled before it finished' }
})
