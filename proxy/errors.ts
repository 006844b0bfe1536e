import { defineErrors } from '../errors/index.ts'

export const ProxyErrors = defineErrors({
  FICUS_ERR_PATH_INVALID: { statusCode: 400, message: 'Bad request path' },
  FICUS_ERR_VALIDATION: { statusCode: 422, message: 'Invalid request' },
  FICUS_ERR_INTERNAL: { statusCode: 500, message: 'Internal error' },
  FICUS_ERR_ADMIN_UNAUTHORIZED: { statusCode: 401, message: 'A valid admin bearer token is required' }
})
