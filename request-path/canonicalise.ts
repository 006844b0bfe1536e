// Stage 1, canonicalise: the request's shape passes the strict edge (HTTP version, method,
// upgrade, a body on GET) and its path is put in the canonical form every later stage and legacy
// see, or refused with 400. fastify's rewriteUrl runs before routing, so the path's problem is
// kept on the raw request until this stage can answer it.
import type { IncomingMessage } from 'node:http'
import { canonicalizeUrl } from './canonical-path.ts'
import { EdgeErrors } from './errors.ts'
import { edgeRefusal } from './strict-edge.ts'
import type { Exchange } from './exchange.ts'
import type { RequestOutcome, Stage } from './stage.ts'

const kPathProblem = Symbol('ficus.pathProblem')
type RawRequest = IncomingMessage & { [kPathProblem]?: string }

/** fastify's rewriteUrl: the canonical URL, or `/` with the problem kept for the stage. */
export function rewriteUrl (req: IncomingMessage): string {
  const canonical = canonicalizeUrl(req.url ?? '')
  if (canonical.ok) return canonical.url
  ;(req as RawRequest)[kPathProblem] = canonical.reason
  return '/'
}

export class CanonicaliseStage implements Stage {
  readonly name = 'canonicalise'
  readonly #lifecycle: { readonly draining: boolean }

  /** While `lifecycle.draining`, every answer says `Connection: close` (the drain after SIGTERM). */
  constructor (lifecycle: { readonly draining: boolean }) {
    this.#lifecycle = lifecycle
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const raw = exchange.request.raw
    const refusal = edgeRefusal(raw)
    if (refusal !== undefined) return refusal
    const pathProblem = (raw as RawRequest)[kPathProblem]
    if (pathProblem !== undefined) return EdgeErrors.FICUS_ERR_PATH_INVALID(pathProblem)
    if (this.#lifecycle.draining) exchange.reply.header('connection', 'close')
    return undefined
  }
}
