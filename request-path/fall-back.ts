// Stage 7a, fall back: a new handler that throws, answers 5xx before any byte, or misses its
// deadline on an idempotent request is answered by legacy instead, when the route allows it and
// nothing was sent yet. That answer never goes through fastify's error handler, so legacy's own
// failure still gets ficus's error page; a handler that answers after the fallback is ignored.
import type { Readable } from 'node:stream'
import { runForwarding } from '../cancellation/request-scope.ts'
import { FicusError } from '../errors/index.ts'
import { SafetyErrors } from '../safety/errors.ts'
import type { FallbackReason } from '../core/backend.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import { FALLBACK_NONE, FALLBACK_SENDING, FALLBACK_WAITING, type Exchange } from './exchange.ts'
import { SAFE_METHODS } from './guard.ts'
import type { ServeStage } from './serve.ts'
import { ABANDON, type Stage } from './stage.ts'

export class FallBackStage implements Stage {
  readonly name = 'fall back'
  readonly #safety: SafetyNet
  readonly #serve: ServeStage

  constructor (safety: SafetyNet, serve: ServeStage) {
    this.#safety = safety
    this.#serve = serve
  }

  onSend (exchange: Exchange, payload: unknown): unknown {
    const fallback = exchange.fallback
    if (fallback !== FALLBACK_NONE) {
      // Legacy's answer is a stream (or, when legacy failed, ficus's error page, sent before
      // any byte). Anything else is the handler answering too late: that send is abandoned,
      // never completed, so nothing of it reaches the client.
      if (fallback === FALLBACK_WAITING) {
        if (isStream(payload) || exchange.errorPage) exchange.fallback = FALLBACK_SENDING
        else return ABANDON
      } else if (exchange.reply.raw.headersSent) return ABANDON
      return payload
    }
    // A 5xx of the handler's own, before any byte: this send is abandoned and legacy answers
    // instead. ficus's error pages (a documented code, e.g. the session store is down) are the answer.
    if (exchange.backend === 'new' && exchange.reply.statusCode >= 500 && !exchange.errorPage && this.fallBack(exchange, 'status', undefined)) return ABANDON
    return payload
  }

  /** Bound once: the deadline timer of every new-side request calls it. */
  readonly onDeadline = (exchange: Exchange, timeoutMs: number): void => {
    exchange.timer = null
    const scope = exchange.scope
    if (scope !== null) this.#safety.cancel(scope, exchange.guard?.name, 'deadline')
    const reply = exchange.reply
    if (reply.sent || reply.raw.headersSent) return
    const error = SafetyErrors.FICUS_ERR_NEW_HANDLER_TIMEOUT(`no answer within ${timeoutMs} ms`)
    if (this.fallBack(exchange, 'timeout', error)) return
    try {
      reply.send(error)
    } catch {
      // The reply is inside an error hook: it is being answered already.
    }
  }

  /**
   * Sends a failed new-side request to legacy when that is safe: an idempotent method, nothing
   * sent yet, fallback allowed by the route. Returns false (the failure is the answer) otherwise.
   */
  readonly fallBack = (exchange: Exchange, reason: FallbackReason, error: unknown): boolean => {
    const guard = exchange.guard
    const request = exchange.request
    const reply = exchange.reply
    if (exchange.backend !== 'new' || guard === null || !guard.fallback || !SAFE_METHODS.has(request.method) || reply.raw.headersSent || exchange.fallback !== FALLBACK_NONE) return false
    // A FicusError is a documented answer (the school's database is down, the session store is
    // down, a 4xx): legacy would fare no better with a shared dependency, and the code says why.
    // A fastify 4xx is the answer to a bad request. Anything else thrown is the handler failing.
    if (reason === 'error') {
      if (error instanceof FicusError) return false
      const status = (error as { statusCode?: unknown } | undefined)?.statusCode
      if (typeof status === 'number' && status >= 400 && status < 500) return false
    }
    if (exchange.timer !== null) {
      clearTimeout(exchange.timer)
      exchange.timer = null
    }
    exchange.backend = 'fallback'
    exchange.fallback = FALLBACK_WAITING
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
    reply.code(200)
    this.#safety.events.onFallback(guard.name, reason)
    this.#safety.logger.warn({ reqId: request.id, route: guard.name, tenant: exchange.tenant?.id, reason, err: error }, 'new handler failed before sending: served from legacy')
    // Legacy's request stops when the client goes away or at shutdown, like the handler's work.
    const scope = exchange.scope
    if (scope === null) this.#serve.toLegacy(exchange)
    else runForwarding(scope.forwardSignal, () => this.#serve.toLegacy(exchange))
    return true
  }
}

export function isStream (payload: unknown): payload is Readable {
  return typeof payload === 'object' && payload !== null && typeof (payload as { pipe?: unknown }).pipe === 'function'
}
