// What a client sees when ficus itself answers with an error: a short page (or JSON for API
// clients) with a stable code and the request id, never a stack, an upstream address or a cause.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { CommonErrors } from '../core/errors.ts'
import { FicusError } from '../errors/index.ts'
import { EdgeErrors } from './errors.ts'
import { escapeHtml } from '../html/escape.ts'

export function toFicusError (error: FastifyError | Error): FicusError {
  if (error instanceof FicusError) return error
  const fastifyError = error as FastifyError
  if (fastifyError.validation !== undefined) {
    // Schema failures on migrated routes name the offending field: `body/status must be equal to one of ...`.
    return CommonErrors.FICUS_ERR_VALIDATION(fastifyError.message, { cause: error })
  }
  const status = fastifyError.statusCode
  if (status !== undefined && status >= 400 && status < 500) {
    // fastify's own client errors keep fastify's code (FST_ERR_*, from fastify's table).
    if (fastifyError.code === undefined) return EdgeErrors.FICUS_ERR_BAD_REQUEST(fastifyError.message, { statusCode: status, cause: error })
    return new FicusError(fastifyError.code, { statusCode: status, message: fastifyError.message })
  }
  return CommonErrors.FICUS_ERR_INTERNAL(undefined, { cause: error })
}

export function sendError (request: FastifyRequest, reply: FastifyReply, error: FicusError): FastifyReply {
  reply.code(error.statusCode)
  if (wantsJson(request)) {
    return reply.type('application/json; charset=utf-8').send({ error: { code: error.code, message: error.message, requestId: request.id } })
  }
  return reply.type('text/html; charset=utf-8').send(errorPage(error, request.id))
}

function wantsJson (request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? ''
  if (accept.includes('html')) return false
  return accept.includes('json') || (request.headers['content-type'] ?? '').includes('json')
}

export function errorPage (error: FicusError, requestId: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${error.statusCode}</title></head>
<body><h1>${escapeHtml(error.message)}</h1><p>Error ${error.statusCode} &middot; ${error.code} &middot; request ${escapeHtml(requestId)}</p></body></html>
`
}
