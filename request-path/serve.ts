// Stage 6, serve: legacy-bound requests are forwarded now, before the body is read (the legacy
// adapter streams it), with the session cookie only when it names a session of this school or
// of none yet (sessions/bindings.ts), and upgrades tunnelled. New-bound requests go on to their
// route: its access rule (preValidation), its upgrade gate (preHandler), then its handler, run
// in the request's cancellation scope and, on a throw, handed to the fallback.
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteHandlerMethod } from 'fastify'
import { offeredProtocols, pendingUpgrade } from '../legacy-adapter/tunnel.ts'
import type { FallbackReason } from '../core/backend.ts'
import type { MigratedRoute } from '../core/route.ts'
import { CommonErrors } from '../core/errors.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import type { SessionBindings } from '../sessions/bindings.ts'
import { FALLBACK_NONE, type Exchange } from './exchange.ts'
import type { GuardStage } from './guard.ts'
import { laneFailure } from './legacy-lane.ts'
import { HANDED_OVER, type RequestOutcome, type Stage } from './stage.ts'

/** Tries to send a failed new-side request to legacy; false when its failure is the answer (fall-back.ts). */
export type FallBack = (exchange: Exchange, reason: FallbackReason, error: unknown) => boolean

export class ServeStage implements Stage {
  readonly name = 'serve'
  readonly #bindings: SessionBindings | undefined
  readonly #servedBy: string | undefined

  constructor (bindings: SessionBindings | undefined, servedByHeader: string | undefined) {
    this.#bindings = bindings
    this.#servedBy = servedByHeader
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const backend = exchange.backend
    if (backend === 'legacy') {
      // Already forwarded by the legacy lane, which legacy did not answer: its failure is the answer.
      const failure = laneFailure(exchange.request.raw)
      if (failure !== undefined) {
        exchange.request.legacyUpstream = failure.upstream
        return failure.error
      }
      this.toLegacy(exchange)
      return HANDED_OVER
    }
    if (backend === 'new' && this.#servedBy !== undefined) exchange.reply.header(this.#servedBy, 'new')
    return undefined
  }

  /** Forwards to legacy with the cookie rules: for legacy-bound requests and fallbacks alike. */
  toLegacy (exchange: Exchange): void {
    const request = exchange.request
    const cookie = request.headers.cookie
    const forLegacy = this.#bindings === undefined ? cookie : this.#bindings.legacyCookieHeader(cookie, exchange.tenant?.id)
    if (forLegacy === cookie) return forward(request, exchange.reply)
    if (!(forLegacy instanceof Promise)) return sendWithCookie(request, exchange.reply, forLegacy)
    forLegacy.then((header) => sendWithCookie(request, exchange.reply, header), (error: Error) => exchange.reply.send(error))
  }
}

/**
 * A migrated route's handler, run in its request's cancellation scope (tracked, so shutdown can
 * cancel it) and, when the route allows fallback, wrapped so that a throw on an idempotent
 * request falls back to legacy before fastify's error handler sees it. A handler that returns
 * no promise keeps its contract (it answers through `reply` whenever it likes).
 */
export function newHandler (route: MigratedRoute, safety: SafetyNet, guardStage: GuardStage, fallBack: FallBack): RouteHandlerMethod {
  const handler = route.handler as RouteHandlerMethod
  const fallback = route.fallbackToLegacy !== false
  return function guarded (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    const exchange = request.exchange
    const scope = exchange.scope ?? guardStage.openScope(exchange)
    const run = (): unknown => {
      const result = scope.run(() => handler.call(this, request, reply))
      if (scope.running) safety.track(scope, exchange.guard?.name ?? request.routeOptions.url ?? '')
      return result
    }
    if (!fallback) return run()
    const onThrow = (error: unknown): FastifyReply => {
      // A throw after the request went to legacy (a late handler) has nobody to answer.
      if (exchange.fallback !== FALLBACK_NONE || fallBack(exchange, 'error', error)) return reply
      throw error
    }
    let result: unknown
    try {
      result = run()
    } catch (error) {
      return onThrow(error)
    }
    if (typeof result === 'object' && result !== null && typeof (result as Promise<unknown>).then === 'function') return (result as Promise<unknown>).then(undefined, onThrow)
    return result
  } as RouteHandlerMethod
}

/** The route's own upgrade hook, or a refusal: a migrated route takes upgrades only when it says so. */
export function upgradeGate (route: MigratedRoute) {
  return function upgradeGate (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const pending = pendingUpgrade(request.raw)
    if (pending === undefined || offeredProtocols(request.headers.upgrade).length === 0) return done()
    if (route.upgrade === undefined) return done(CommonErrors.FICUS_ERR_UPGRADE_UNSUPPORTED(`route ${route.name} does not accept upgrades`))
    reply.hijack()
    ;(reply.raw as ServerResponse).detachSocket(pending.socket as Socket)
    route.upgrade(request, pending.socket, pending.head)
  }
}

/** Unreachable: the serve stage forwards every request of the catch-all routes before their handler. */
export async function legacyOnly (): Promise<never> {
  throw CommonErrors.FICUS_ERR_INTERNAL('catch-all handler reached')
}

function sendWithCookie (request: FastifyRequest, reply: FastifyReply, cookie: string | undefined): void {
  if (cookie === undefined) delete request.raw.headers.cookie
  else request.raw.headers.cookie = cookie
  forward(request, reply)
}

// An upgrade handed over by the upgrade listener is tunnelled; a bare offer of h2c is ignored.
function forward (request: FastifyRequest, reply: FastifyReply): void {
  const pending = pendingUpgrade(request.raw)
  if (pending !== undefined && offeredProtocols(request.headers.upgrade).length > 0) reply.tunnelToLegacy(pending)
  else reply.toLegacy()
}
