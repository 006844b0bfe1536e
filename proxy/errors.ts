import { defineErrors } from '../errors/index.ts'

export const ProxyErrors = defineErrors({
  FICUS_ERR_PATH_INVALID: { statusCode: 400, message: 'Bad request path' },
  FICUS_ERR_HTTP_VERSION_UNSUPPORTED: { statusCode: 505, message: 'Only HTTP/1.0 and HTTP/1.1 requests are served' },
  FICUS_ERR_METHOD_UNSUPPORTED: { statusCode: 501, message: 'This method is not served' },
  FICUS_ERR_UPGRADE_UNSUPPORTED: { statusCode: 501, message: 'Protocol upgrades (such as WebSocket) are not served' },
  FICUS_ERR_BODY_NOT_ALLOWED: { statusCode: 400, message: 'A GET or HEAD request cannot carry a body' },
  FICUS_ERR_VALIDATION: { statusCode: 422, message: 'Invalid request' },
  FICUS_ERR_INTERNAL: { statusCode: 500, message: 'Internal error' },
  FICUS_ERR_ADMIN_UNAUTHORIZED: { statusCode: 401, message: 'A valid admin bearer token is required' }
})
