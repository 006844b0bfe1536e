// The request path, in order. Every request takes the stages of this list, top to bottom, at
// three points of fastify's lifecycle: `onRequest` before the body is read (canonicalise ->
// school -> route -> decide -> guard -> serve), `onSend` before the answer's first
// byte (guard's timer -> fall back -> shadow's copy), `onResponse` once it is written (guard's
// breaker -> shadow's replay -> observe). One exchange per request (exchange.ts) carries what
// each stage found; refusals are answered by error-page.ts. The order is this list, nothing else.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { NEVER_CANCELLED } from '../cancellation/request-scope.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import type { FicusMetrics } from '../metrics/registry.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import type { SessionBindings } from '../sessions/bindings.ts'
import type { HostResolver } from '../tenants/host.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { CanonicaliseStage } from './canonicalise.ts'
import { DecideStage } from './decide.ts'
import { answerWithErrorPage } from './error-page.ts'
import { Exchange } from './exchange.ts'
import { FallBackStage } from './fall-back.ts'
import { GuardStage } from './guard.ts'
import { ObserveStage } from './observe.ts'
import { RouteStage } from './route.ts'
import { SchoolStage } from './school.ts'
import { legacyOnly, newHandler, ServeStage, upgradeGate } from './serve.ts'
import { isShadowReplay, ShadowStage } from './shadow.ts'
import { ABANDON, HANDED_OVER, type Stage } from './stage.ts'

export { rewriteUrl } from './canonicalise.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The school this request is for; set before any handler runs (a getter over the exchange). */
    readonly tenant: Tenant
    /**
     * Fires when the client goes away, the handler's deadline passes or shutdown's grace ends;
     * ficus's own calls (school database, session store) honour it by themselves. Never fires
     * on requests forwarded to legacy.
     */
    readonly workSignal: AbortSignal
  }
}

export interface RequestPathParts {
  readonly hosts: HostResolver
  readonly registry: TenantRegistry
  /** BARE_DOMAIN=legacy: the bare base domain is forwarded to legacy. */
  readonly bareDomainToLegacy: boolean
  readonly flags: FlagReader
  readonly killSwitchFlag: string | undefined
  readonly safety: SafetyNet
  readonly metrics: FicusMetrics
  readonly legacyRouter: LegacyRouter
  /** The session cookie rules for legacy; undefined without a session store. */
  readonly bindings: SessionBindings | undefined
  readonly servedByHeader: string | undefined
  readonly accessLog: boolean
  /** While true, every response says `Connection: close` (the drain after SIGTERM). */
  readonly lifecycle: { readonly draining: boolean }
}

/** The path's stages, built once, and what the routes need of them. */
export class RequestPath {
  readonly stages: readonly Stage[]
  readonly #shadow: ShadowStage
  readonly #guard: GuardStage
  readonly #fallBack: FallBackStage
  readonly #safety: SafetyNet

  constructor (parts: RequestPathParts) {
    const serve = new ServeStage(parts.bindings, parts.servedByHeader)
    this.#fallBack = new FallBackStage(parts.safety, serve)
    this.#guard = new GuardStage(parts.safety, this.#fallBack.onDeadline)
    this.#shadow = new ShadowStage(parts.safety)
    this.#safety = parts.safety
    this.stages = [
      new CanonicaliseStage(parts.lifecycle),
      new SchoolStage(parts.hosts, parts.registry, parts.bareDomainToLegacy),
      new RouteStage(),
      new DecideStage(parts.flags, parts.killSwitchFlag, parts.safety),
      this.#guard,
      serve,
      this.#fallBack,
      this.#shadow,
      new ObserveStage(parts.metrics, parts.accessLog)
    ]
  }

  /**
   * Declares the exchange and the handlers' getters over it, the error page, and one hook per
   * lifecycle point running the stages in order. Call before plugins that add onSend hooks
   * (sessions): theirs must run after the fallback's.
   */
  install (app: FastifyInstance): void {
    this.#shadow.attach(app)
    app.decorateRequest('exchange', null as unknown as Exchange)
    app.decorateRequest('tenant', { getter (this: FastifyRequest) { return this.exchange?.tenant as Tenant } })
    app.decorateRequest('workSignal', { getter (this: FastifyRequest) { return this.exchange?.scope?.signal ?? NEVER_CANCELLED } })
    app.setErrorHandler(answerWithErrorPage)

    const onRequest = this.stages.filter((stage) => stage.onRequest !== undefined)
    const onSend = this.stages.filter((stage) => stage.onSend !== undefined)
    const onResponse = this.stages.filter((stage) => stage.onResponse !== undefined)

    app.addHook('onRequest', function requestPath (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const exchange = new Exchange(request, reply)
      request.exchange = exchange
      if (isShadowReplay(request.raw)) {
        exchange.backend = 'shadow'
        exchange.reason = 'shadow-replay'
      }
      for (let i = 0; i < onRequest.length; i++) {
        const outcome = (onRequest[i] as Required<Stage>).onRequest(exchange)
        if (outcome === undefined) continue
        // Handed over: the legacy adapter answers; fastify's hook chain is not resumed.
        if (outcome === HANDED_OVER) return
        return done(outcome)
      }
      done()
    })
    app.addHook('onSend', function answerPath (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) {
      const exchange = request.exchange
      let sent = payload
      for (let i = 0; i < onSend.length; i++) {
        sent = (onSend[i] as Required<Stage>).onSend(exchange, sent)
        // Abandoned: this send is never completed; the fallback's answer takes its place.
        if (sent === ABANDON) return
      }
      done(null, sent)
    })
    app.addHook('onResponse', function afterPath (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
      const exchange = request.exchange
      for (let i = 0; i < onResponse.length; i++) (onResponse[i] as Required<Stage>).onResponse(exchange)
      done()
    })
  }

  /** A migrated route's handler and upgrade gate, as the serve stage runs them. */
  handlerOf (route: MigratedRoute): ReturnType<typeof newHandler> {
    return newHandler(route, this.#safety, this.#guard, this.#fallBack.fallBack)
  }

  upgradeGateOf (route: MigratedRoute): ReturnType<typeof upgradeGate> {
    return upgradeGate(route)
  }

  readonly legacyOnly = legacyOnly
}
