// One JSON line per request: who (request id, school), what (method, path without its query,
// route), which side answered, how (status) and how long. Never a header, a cookie or a query
// string: those carry session ids and tokens.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { BackendLabel } from '../core/backend.ts'
import { pathOf } from '../core/url.ts'

export interface AccessLogLine {
  readonly tenant: string | undefined
  readonly method: string
  readonly path: string
  readonly route: string
  readonly backend: BackendLabel
  /** The legacy app that answered (a configured name), when the request went to one. */
  readonly upstream: string | undefined
  readonly status: number
  readonly durationMs: number
}

export const ACCESS_LOG_MESSAGE = 'request'

/** Writes the line through the request's logger, which carries the request id (`reqId`). */
export function writeAccessLog (request: FastifyRequest, reply: FastifyReply, route: string, backend: BackendLabel): void {
  const line: AccessLogLine = {
    tenant: request.tenant?.id,
    method: request.method,
    path: pathOf(request.url),
    route,
    backend,
    upstream: request.legacyUpstream?.name,
    status: reply.statusCode,
    durationMs: Math.round(reply.elapsedTime * 100) / 100
  }
  // Shadow replays are ficus's own traffic: kept out of the access log unless debugging.
  if (backend === 'shadow') request.log.debug(line, ACCESS_LOG_MESSAGE)
  else request.log.info(line, ACCESS_LOG_MESSAGE)
}
