// The exchange: everything ficus knows about one request, in one typed object created once in
// the first hook (or handed over ready-made by a shadow replay) and read by every stage after.
// It is the only per-request state of the path: `request.tenant` and `request.workSignal`, the
// handlers' contract, read it. One object per request and no closures keep the legacy path cheap.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RequestScope } from '../cancellation/request-scope.ts'
import type { LegacyUpstream } from '../legacy-adapter/upstreams.ts'
import type { BackendLabel } from '../core/backend.ts'
import type { RouteGuard } from '../safety/safety-net.ts'
import type { BoundedTee } from '../safety/shadow.ts'
import type { Tenant } from '../tenants/tenant.ts'

/** Why the request went where it went (the access log's `backend` says where). */
export type DecisionReason =
  | 'undecided'
  /** No migrated route claims the path: legacy. */
  | 'unmigrated'
  /** The bare base domain, forwarded with BARE_DOMAIN=legacy. */
  | 'bare-domain'
  | 'flag-on'
  | 'flag-off'
  /** The flag said new, the route's breaker holds this school on legacy. */
  | 'breaker-open'
  /** ficus's own comparison run of a request legacy answered. */
  | 'shadow-replay'

/** No fallback. */
export const FALLBACK_NONE = 0
/** The new handler failed: gone to legacy, waiting for its answer. */
export const FALLBACK_WAITING = 1
/** Legacy's answer (or ficus's error page for its failure) is being sent. */
export const FALLBACK_SENDING = 2
export type FallbackState = typeof FALLBACK_NONE | typeof FALLBACK_WAITING | typeof FALLBACK_SENDING

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's exchange; set by the first hook, before anything else of ficus runs. */
    exchange: Exchange
  }
}

export class Exchange {
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  /** The school; set by the school stage (undefined for the bare domain and refusals). */
  tenant: Tenant | undefined = undefined
  /** The migrated route's guard; null when no migrated route claims the path. */
  guard: RouteGuard | null = null
  /** Which side answers, as metrics and the access log name it. */
  backend: BackendLabel = 'none'
  reason: DecisionReason = 'undecided'
  fallback: FallbackState = FALLBACK_NONE
  /** Legacy answers and the new handler is to be compared with it in the background. */
  shadowing = false
  /** The copy of legacy's body kept for that comparison. */
  capture: BoundedTee | null = null
  /** The new handler's deadline. */
  timer: NodeJS.Timeout | null = null
  /** The cancellation scope of a request served (or shadowed) by a new handler. */
  scope: RequestScope | null = null
  /** The answer is ficus's own error page (a documented code), set by the error stage. */
  errorPage = false

  constructor (request: FastifyRequest, reply: FastifyReply) {
    this.request = request
    this.reply = reply
  }

  /** The legacy upstream the request went to, as the legacy adapter chose it. */
  get legacyUpstream (): LegacyUpstream | undefined {
    return this.request.legacyUpstream
  }

  /** Milliseconds since the request arrived (fastify's own clock). */
  get elapsedMs (): number {
    return this.reply.elapsedTime
  }
}
