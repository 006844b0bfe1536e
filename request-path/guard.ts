// Stage 5, guard: a request bound for a new handler passes the route's breaker (a school whose
// handler keeps failing is held on legacy for the cool-down), then gets its cancellation scope
// (its signal fires when the client goes away, at the deadline or at shutdown) and, on GET, HEAD
// and OPTIONS, its deadline. A shadow replay gets a scope and the shadow deadline. Who may call
// the route is checked later, per route, before its body is validated (access/stage.ts). Once
// answered, the outcome counts for the school's breaker.
import { RequestScope } from '../cancellation/request-scope.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import type { Exchange } from './exchange.ts'
import type { RequestOutcome, Stage } from './stage.ts'

// Methods that may be answered twice without harm: the only ones replayed on legacy or shadowed.
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS'])

/** What happens when a handler's deadline passes (fall-back.ts). */
export type OnDeadline = (exchange: Exchange, timeoutMs: number) => void

export class GuardStage implements Stage {
  readonly name = 'guard'
  readonly #safety: SafetyNet
  readonly #onDeadline: OnDeadline
  readonly #shadowTimeoutMs: number

  constructor (safety: SafetyNet, onDeadline: OnDeadline) {
    this.#safety = safety
    this.#onDeadline = onDeadline
    this.#shadowTimeoutMs = safety.config.shadow.timeoutMs
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const backend = exchange.backend
    if (backend === 'shadow') {
      this.openScope(exchange)
      exchange.timer = setTimeout(this.#onDeadline, this.#shadowTimeoutMs, exchange, this.#shadowTimeoutMs)
      return undefined
    }
    const guard = exchange.guard
    if (backend !== 'new' || guard === null) return undefined
    if (!guard.breaker.allow((exchange.tenant as { id: string }).id)) {
      exchange.backend = 'legacy'
      exchange.reason = 'breaker-open'
      return undefined
    }
    this.openScope(exchange)
    if (guard.timeoutMs > 0 && SAFE_METHODS.has(exchange.request.method)) exchange.timer = setTimeout(this.#onDeadline, guard.timeoutMs, exchange, guard.timeoutMs)
    return undefined
  }

  onSend (exchange: Exchange, payload: unknown): unknown {
    const timer = exchange.timer
    if (timer !== null) {
      clearTimeout(timer)
      exchange.timer = null
    }
    return payload
  }

  onResponse (exchange: Exchange): void {
    const guard = exchange.guard
    const backend = exchange.backend
    if (guard !== null && (backend === 'new' || backend === 'fallback')) guard.breaker.record((exchange.tenant as { id: string }).id, backend === 'fallback' || exchange.reply.statusCode >= 500)
  }

  /** The request's cancellation scope, cancelled when the client closes before the whole answer was written. */
  openScope (exchange: Exchange): RequestScope {
    const scope = new RequestScope(exchange.request.id)
    exchange.scope = scope
    const raw = exchange.reply.raw
    const safety = this.#safety
    raw.once('close', () => { if (!raw.writableFinished) safety.cancel(scope, exchange.guard?.name, 'client') })
    return scope
  }
}

