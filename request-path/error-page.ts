// The answer to every refusal and failure of the path: ficus's own error page with its
// FICUS_ERR_ code (error-reply.ts). It marks the exchange first, so the fallback stage
// knows this answer is not a handler's 5xx to replace.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { sendError, toFicusError } from './error-reply.ts'
import { closesConnection, isEdgeRefusal } from './strict-edge.ts'

export function answerWithErrorPage (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // Errors fastify raises before the first hook (none today) have no exchange yet.
  const exchange = request.exchange as typeof request.exchange | null
  if (exchange !== null) exchange.errorPage = true
  const ficusError = toFicusError(error as Error)
  if (closesConnection(ficusError)) reply.header('connection', 'close')
  // A cancellation (client gone, deadline, shutdown) is logged where it fired, not as a failure.
  if (ficusError.statusCode >= 500 && !isEdgeRefusal(ficusError) && ficusError.code !== 'FICUS_ERR_REQUEST_CANCELLED') request.log.error({ err: error, code: ficusError.code }, 'request failed')
  return sendError(request, reply, ficusError)
}
