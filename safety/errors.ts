import { defineErrors } from '../errors/index.ts'

export const SafetyErrors = defineErrors({
  FICUS_ERR_NEW_HANDLER_TIMEOUT: { statusCode: 504, message: 'The new handler did not answer in time' }
})
