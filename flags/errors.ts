import { defineErrors } from '../errors/index.ts'

export const FlagErrors = defineErrors({
  FICUS_ERR_FLAGS_NOT_READY: { statusCode: 503, message: 'Feature flags are not loaded yet' }
})
