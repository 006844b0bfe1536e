// The pre-warm branch, kept whole in one place so it can be deleted with its step: ficus's own
// requests that open a connection to each legacy upstream before /readyz says ready
// (proxy/prewarm-steps.ts sends them with app.inject). They carry a marker new in every process,
// which no client can know, are sent straight to the upstream they name, and are neither
// counted nor access-logged as traffic (observe.ts).
import { randomBytes } from 'node:crypto'
import type { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import type { Exchange } from './exchange.ts'
import { HANDED_OVER, type RequestOutcome, type Stage } from './stage.ts'

/** Header that carries the per-process marker of ficus's own pre-warm requests. */
export const INTERNAL_HEADER = 'x-ficus-internal'
/** On a pre-warm request only: the legacy upstream it opens a connection to. */
export const PREWARM_UPSTREAM_HEADER = 'x-ficus-prewarm-upstream'

export class PrewarmStage implements Stage {
  readonly name = 'prewarm'
  /** The header value that marks a pre-warm request; unguessable, new in every process. */
  readonly marker = `${randomBytes(24).toString('hex')}:prewarm`
  readonly #router: LegacyRouter

  constructor (router: LegacyRouter) {
    this.#router = router
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const headers = exchange.request.headers
    if (headers[INTERNAL_HEADER] !== this.marker) return undefined
    const raw = exchange.request.raw.headers
    delete raw[INTERNAL_HEADER]
    const named = headers[PREWARM_UPSTREAM_HEADER]
    delete raw[PREWARM_UPSTREAM_HEADER]
    exchange.backend = 'legacy'
    exchange.reason = 'prewarm'
    exchange.reply.toLegacy(typeof named === 'string' ? this.#router.get(named) : undefined)
    return HANDED_OVER
  }
}
