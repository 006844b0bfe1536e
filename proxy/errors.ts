import { defineErrors, defineStartupErrors } from '../errors/index.ts'

export const ProxyErrors = defineErrors({
  FICUS_ERR_PATH_INVALID: { statusCode: 400, message: 'Bad request path' },
  FICUS_ERR_HTTP_VERSION_UNSUPPORTED: { statusCode: 505, message: 'Only HTTP/1.0 and HTTP/1.1 requests are served' },
  FICUS_ERR_METHOD_UNSUPPORTED: { statusCode: 501, message: 'This method is not served' },
  FICUS_ERR_BODY_NOT_ALLOWED: { statusCode: 400, message: 'A GET or HEAD request cannot carry a body' },
  /** A client error fastify found that has no code of its own; answered with fastify's 4xx status. */
  FICUS_ERR_BAD_REQUEST: { statusCode: 400, message: 'Bad request' },
  FICUS_ERR_ADMIN_UNAUTHORIZED: { statusCode: 401, message: 'A valid admin bearer token is required' }
})

// Startup failures: one line on stderr naming the variable (or the file), exit code 1.
export const StartupErrors = defineStartupErrors({
  FICUS_ERR_CONFIG: { message: 'Invalid configuration' },
  FICUS_ERR_STARTUP: { message: 'ficus could not start' }
})
export type StartupCode = keyof typeof StartupErrors.table
