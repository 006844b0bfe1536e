// The edge's own refusals, answered before a request reaches either side: a path that cannot be
// decided on, an HTTP version, method or body the edge does not serve, and a client error fastify
// found that has no code of its own.
import { defineErrors } from '../errors/index.ts'

export const EdgeErrors = defineErrors({
  FICUS_ERR_PATH_INVALID: { statusCode: 400, message: 'Bad request path' },
  FICUS_ERR_HTTP_VERSION_UNSUPPORTED: { statusCode: 505, message: 'Only HTTP/1.0 and HTTP/1.1 requests are served' },
  FICUS_ERR_METHOD_UNSUPPORTED: { statusCode: 501, message: 'This method is not served' },
  FICUS_ERR_BODY_NOT_ALLOWED: { statusCode: 400, message: 'A GET or HEAD request cannot carry a body' },
  /** A client error fastify found that has no code of its own; answered with fastify's 4xx status. */
  FICUS_ERR_BAD_REQUEST: { statusCode: 400, message: 'Bad request' }
})
