// The safety nets of migrated routes, as the edge uses them at four points of a request:
// dispatch (breaker, shadow decision, handler deadline), the handler (a throw), onSend (a 5xx
// before any byte, the copy of legacy's body for shadow, late sends after a fallback) and
// onResponse (breaker outcome, shadow job). A fallback never goes through fastify's error
// handler, so legacy's own failure still gets ficus's error page. Per-request state lives in
// fields fastify declares up front: the hot path allocates nothing here beyond a timer on the
// new side.
import { randomBytes } from 'node:crypto'
import { pipeline, type Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteHandlerMethod } from 'fastify'
import { NEVER_CANCELLED, RequestScope, runForwarding, type CancelReason } from '../cancellation/request-scope.ts'
import { FicusError } from '../errors/index.ts'
import { decideBackend, type GuardedRoute } from '../flags/decide-backend.ts'
import type { FlagContext } from '../flags/flag-context.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { MigratedRoute } from '../new-routes/route.ts'
import { KeyedBreaker, type BreakerState, type BreakerTransition } from './breaker.ts'
import { CompiledRules } from './compare.ts'
import type { SafetyConfig } from './config.ts'
import { SafetyErrors } from './errors.ts'
import { within } from './lifecycle.ts'
import { BoundedTee, ShadowRecord, ShadowRunner, type ShadowDropReason, type ShadowJob, type ShadowMismatch, type ShadowOutcome } from './shadow.ts'

/** Which side answered, as metrics and the access log name it. `none`: ficus itself, before routing. */
export type BackendLabel = 'legacy' | 'new' | 'fallback' | 'shadow' | 'none'
export type FallbackReason = 'error' | 'status' | 'timeout'

/** Where the safety nets report; the metrics registry implements it. */
export interface SafetyEvents {
  onShadowResult (route: string, cohort: string | undefined, outcome: ShadowOutcome): void
  onShadowDropped (route: string, reason: ShadowDropReason): void
  onFallback (route: string, reason: FallbackReason): void
  onBreakerTransition (route: string, transition: BreakerTransition): void
  /** A running new handler's signal fired. */
  onCancelled (route: string, reason: CancelReason): void
}

export interface SafetyLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

/** Header that carries the per-process marker of ficus's own requests (shadow replays). */
export const INTERNAL_HEADER = 'x-ficus-internal'
// Methods that may be answered twice without harm: the only ones replayed on legacy or shadowed.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const EMPTY = Buffer.alloc(0)
const NOT_FORWARDED_TO_SHADOW = ['accept-encoding', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer']

/** Everything the safety nets know about one migrated route, built once. */
export class RouteGuard {
  readonly route: MigratedRoute
  readonly name: string
  /** Position in the route list (metrics index their series by it). */
  readonly index: number
  readonly shadowRoute: GuardedRoute
  readonly rules: CompiledRules
  readonly fallback: boolean
  readonly timeoutMs: number
  readonly breaker: KeyedBreaker
  readonly shadow: ShadowRecord

  constructor (route: MigratedRoute, index: number, config: SafetyConfig, onTransition: (transition: BreakerTransition) => void) {
    this.route = route
    this.name = route.name
    this.index = index
    this.shadowRoute = Object.freeze({ flag: route.shadow?.flag ?? `${route.flag}${config.shadow.flagSuffix}`, ...(route.killSwitch === undefined ? {} : { killSwitch: route.killSwitch }) })
    this.rules = new CompiledRules(route.shadow)
    this.fallback = route.fallbackToLegacy ?? true
    this.timeoutMs = route.timeoutMs ?? config.newHandlerTimeoutMs
    this.breaker = new KeyedBreaker({ ...config.breaker, onTransition })
    this.shadow = new ShadowRecord(route.name, config.shadow.mismatchesKept, config.breaker.maxSchools)
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    ficusBackend: BackendLabel
    ficusGuard: RouteGuard | null
    /** Set in dispatch when this legacy-bound request is to be compared in the background. */
    ficusShadowing: boolean
    ficusCapture: BoundedTee | null
    ficusTimer: NodeJS.Timeout | null
    /** 0: no fallback; 1: gone to legacy, waiting for its answer; 2: legacy's answer is being sent. */
    ficusFallback: number
    /** Set by the error handler: the answer is ficus's own error page (a documented code). */
    ficusErrorPage: boolean
    /** The cancellation scope of a request served (or shadowed) by a new handler. */
    ficusScope: RequestScope | null
    /**
     * Fires when the client goes away, the handler's deadline passes or shutdown's grace ends;
     * ficus's own calls (school database, session store) honour it by themselves. Never fires
     * on requests forwarded to legacy.
     */
    readonly workSignal: AbortSignal
  }
  interface FastifyContextConfig {
    routeGuard?: RouteGuard
  }
}

/** Sends the request to legacy as the edge does (with its cookie rules). */
export type ToLegacy = (request: FastifyRequest, reply: FastifyReply) => void

export interface SafetyNetOptions {
  readonly config: SafetyConfig
  readonly flags: FlagReader
  readonly killSwitchFlag: string | undefined
  readonly events: SafetyEvents
  readonly logger: SafetyLogger
}

export class SafetyNet {
  readonly config: SafetyConfig
  readonly #flags: FlagReader
  readonly #killSwitch: string | undefined
  readonly #events: SafetyEvents
  readonly #logger: SafetyLogger
  readonly #guards: RouteGuard[] = []
  readonly #runner: ShadowRunner
  readonly #secret = randomBytes(24).toString('hex')
  /** The header value that marks ficus's own shadow replays; unguessable, new in every process. */
  readonly shadowMarker = `${this.#secret}:shadow`
  /** Handlers running now, with their route's name: shutdown cancels them. */
  readonly #running = new Map<RequestScope, string>()
  #app: FastifyInstance | undefined
  #toLegacy: ToLegacy = () => { throw new Error('the safety net is not installed') }
  /** Bound once: the deadline timer of every new-side request calls it. */
  readonly #onTimeout = (reply: FastifyReply, timeoutMs: number): void => {
    const request = reply.request
    request.ficusTimer = null
    const scope = request.ficusScope
    if (scope !== null) this.#cancel(scope, request.ficusGuard?.name, 'deadline')
    if (reply.sent || reply.raw.headersSent) return
    const error = SafetyErrors.FICUS_ERR_NEW_HANDLER_TIMEOUT(`no answer within ${timeoutMs} ms`)
    if (this.#fallBack(request, reply, 'timeout', error)) return
    try {
      reply.send(error)
    } catch {
      // The reply is inside an error hook: it is being answered already.
    }
  }

  constructor (options: SafetyNetOptions) {
    this.config = options.config
    this.#flags = options.flags
    this.#killSwitch = options.killSwitchFlag
    this.#events = options.events
    this.#logger = options.logger
    this.#runner = new ShadowRunner({
      concurrency: options.config.shadow.concurrency,
      replay: (job) => this.#replay(job),
      sink: options.events,
      onFailure: (error, job) => this.#logger.warn({ err: (error as Error).message, route: job.record.route, tenant: job.tenant }, 'shadow replay failed')
    })
  }

  /** One guard per migrated route, in route order; registered on the route's config. */
  guard (route: MigratedRoute): RouteGuard {
    const guard = new RouteGuard(route, this.#guards.length, this.config, (transition) => this.#onTransition(route.name, transition))
    this.#guards.push(guard)
    return guard
  }

  get guards (): readonly RouteGuard[] {
    return this.#guards
  }

  /** Declares the request fields and adds the hooks; call before plugins that add onSend hooks. */
  install (app: FastifyInstance, toLegacy: ToLegacy): void {
    this.#app = app
    this.#toLegacy = toLegacy
    const net = this
    app.decorateRequest('ficusBackend', 'none')
    app.decorateRequest('ficusGuard', null)
    app.decorateRequest('ficusShadowing', false)
    app.decorateRequest('ficusCapture', null)
    app.decorateRequest('ficusTimer', null)
    app.decorateRequest('ficusFallback', 0)
    app.decorateRequest('ficusErrorPage', false)
    app.decorateRequest('ficusScope', null)
    app.decorateRequest('workSignal', { getter (this: FastifyRequest) { return this.ficusScope?.signal ?? NEVER_CANCELLED } })
    const maxBodyBytes = this.config.shadow.maxBodyBytes

    app.addHook('onSend', function safetyOnSend (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) {
      const timer = request.ficusTimer
      if (timer !== null) {
        clearTimeout(timer)
        request.ficusTimer = null
      }
      const fallback = request.ficusFallback
      if (fallback !== 0) {
        // Legacy's answer is a stream (or, when legacy failed, ficus's error page, sent before
        // any byte). Anything else is the handler answering too late: that send is abandoned,
        // never completed, so nothing of it reaches the client.
        if (fallback === 1) {
          if (isStream(payload) || request.ficusErrorPage) request.ficusFallback = 2
          else return
        } else if (reply.raw.headersSent) return
        return done(null, payload)
      }
      if (request.ficusBackend === 'new') {
        // A 5xx of the handler's own, before any byte: this send is abandoned and legacy answers
        // instead. ficus's error pages (a documented code, e.g. the session store is down) are
        // the answer.
        if (reply.statusCode >= 500 && !request.ficusErrorPage && net.#fallBack(request, reply, 'status', undefined)) return
        return done(null, payload)
      }
      // HEAD has no body to copy (fastify never reads legacy's empty stream for it).
      if (request.ficusShadowing && request.method !== 'HEAD' && isStream(payload)) {
        const tee = new BoundedTee(maxBodyBytes)
        request.ficusCapture = tee
        // Errors of the legacy stream reach the client through the tee, which fails with them.
        pipeline(payload, tee, () => {})
        return done(null, tee)
      }
      done(null, payload)
    })

    app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      const guard = request.ficusGuard
      if (guard !== null) {
        const backend = request.ficusBackend
        if (backend === 'new' || backend === 'fallback') guard.breaker.record(request.tenant.id, backend === 'fallback' || reply.statusCode >= 500)
        else if (request.ficusShadowing) this.#submitShadow(request, reply, guard)
      }
      done()
    })
  }

  /**
   * Dispatch chose legacy for a migrated route: the request is marked for shadow comparison
   * when the route's shadow flag is on for the school (and no kill switch is), the method is
   * GET or HEAD, and there is room to run it.
   */
  legacyChosen (request: FastifyRequest, guard: RouteGuard, context: FlagContext): void {
    request.ficusBackend = 'legacy'
    const method = request.method
    if (method !== 'GET' && method !== 'HEAD') return
    if (decideBackend(this.#flags, guard.shadowRoute, context, this.#killSwitch) !== 'new') return
    if (!this.#runner.hasRoom()) return this.#runner.drop(guard.shadow, 'busy')
    request.ficusShadowing = true
  }

  /**
   * Dispatch chose the new side: false when the breaker holds this school on legacy. Otherwise
   * the request is marked new and, on safe methods, given its deadline.
   */
  admit (request: FastifyRequest, reply: FastifyReply, guard: RouteGuard, tenantId: string): boolean {
    if (!guard.breaker.allow(tenantId)) {
      request.ficusBackend = 'legacy'
      return false
    }
    request.ficusBackend = 'new'
    this.#openScope(request, reply)
    if (guard.timeoutMs > 0 && SAFE_METHODS.has(request.method)) request.ficusTimer = setTimeout(this.#onTimeout, guard.timeoutMs, reply, guard.timeoutMs)
    return true
  }

  /**
   * The route's handler, run in its request's cancellation scope and, when `fallback`, wrapped
   * so that a throw on an idempotent request falls back to legacy before fastify's error handler
   * sees it. A handler that returns no promise keeps its contract (it answers through `reply`
   * whenever it likes).
   */
  wrapHandler (handler: RouteHandlerMethod, fallback = true): RouteHandlerMethod {
    const net = this
    return function guarded (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const scope = request.ficusScope ?? net.#openScope(request, reply)
      const run = (): unknown => {
        const result = scope.run(() => handler.call(this, request, reply))
        if (scope.running) {
          net.#running.set(scope, request.ficusGuard?.name ?? request.routeOptions.url ?? '')
          void scope.settled.then(() => net.#running.delete(scope))
        }
        return result
      }
      if (!fallback) return run()
      const onThrow = (error: unknown): FastifyReply => {
        // A throw after the request went to legacy (a late handler) has nobody to answer.
        if (request.ficusFallback !== 0 || net.#fallBack(request, reply, 'error', error)) return reply
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

  /** Whether this request is ficus's own shadow replay (then it goes to the new handler). */
  isShadowReplay (request: FastifyRequest): boolean {
    return request.headers[INTERNAL_HEADER] === this.shadowMarker
  }

  startShadowReplay (request: FastifyRequest, reply: FastifyReply): void {
    // The marker stays in ficus: a handler that passes headers on must not pass it on.
    delete request.raw.headers[INTERNAL_HEADER]
    request.ficusBackend = 'shadow'
    this.#openScope(request, reply)
    request.ficusTimer = setTimeout(this.#onTimeout, this.config.shadow.timeoutMs, reply, this.config.shadow.timeoutMs)
  }

  /**
   * Sends a failed new-side request to legacy when that is safe: an idempotent method, nothing
   * sent yet, fallback allowed by the route. Returns false (the failure is the answer) otherwise.
   */
  #fallBack (request: FastifyRequest, reply: FastifyReply, reason: FallbackReason, error: unknown): boolean {
    const guard = request.ficusGuard
    if (request.ficusBackend !== 'new' || guard === null || !guard.fallback || !SAFE_METHODS.has(request.method) || reply.raw.headersSent || request.ficusFallback !== 0) return false
    // A FicusError is a documented answer (the school's database is down, the session store is
    // down, a 4xx): legacy would fare no better with a shared dependency, and the code says why.
    // A fastify 4xx is the answer to a bad request. Anything else thrown is the handler failing.
    if (reason === 'error') {
      if (error instanceof FicusError) return false
      const status = (error as { statusCode?: unknown } | undefined)?.statusCode
      if (typeof status === 'number' && status >= 400 && status < 500) return false
    }
    if (request.ficusTimer !== null) {
      clearTimeout(request.ficusTimer)
      request.ficusTimer = null
    }
    request.ficusBackend = 'fallback'
    request.ficusFallback = 1
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
    reply.code(200)
    this.#events.onFallback(guard.name, reason)
    this.#logger.warn({ reqId: request.id, route: guard.name, tenant: request.tenant.id, reason, err: error }, 'new handler failed before sending: served from legacy')
    // Legacy's request stops when the client goes away or at shutdown, like the handler's work.
    const scope = request.ficusScope
    if (scope === null) this.#toLegacy(request, reply)
    else runForwarding(scope.forwardSignal, () => this.#toLegacy(request, reply))
    return true
  }

  /** Called by the error handler before it answers: that answer is not a handler's 5xx to replace. */
  errorPage (request: FastifyRequest): void {
    request.ficusErrorPage = true
  }

  /** Fires the signal of every handler still running; returns how many were running. */
  cancelRunning (reason: CancelReason): number {
    let cancelled = 0
    for (const [scope, route] of this.#running) if (this.#cancel(scope, route, reason)) cancelled++
    return cancelled
  }

  /** Resolves once every running handler has settled, or after `timeoutMs`; false if some had not. */
  async settled (timeoutMs: number): Promise<boolean> {
    if (this.#running.size === 0) return true
    return await within(Promise.all([...this.#running.keys()].map((scope) => scope.settled)), timeoutMs)
  }

  get running (): number {
    return this.#running.size
  }

  #openScope (request: FastifyRequest, reply: FastifyReply): RequestScope {
    const scope = new RequestScope(request.id)
    request.ficusScope = scope
    const raw = reply.raw
    // Closed before the whole answer was written: the client has gone.
    raw.once('close', () => { if (!raw.writableFinished) this.#cancel(scope, request.ficusGuard?.name, 'client') })
    return scope
  }

  #cancel (scope: RequestScope, route: string | undefined, reason: CancelReason): boolean {
    if (!scope.cancel(reason)) return false
    if (route !== undefined) this.#events.onCancelled(route, reason)
    const committedWrites = scope.committedWrites
    // What it committed before the cut stays done, whatever the client is told: say so.
    if (committedWrites > 0) this.#logger.warn({ reqId: scope.requestId, route, reason, committedWrites }, 'request cancelled after it committed a write: that write is done')
    else this.#logger.info({ reqId: scope.requestId, route, reason }, 'request cancelled: its work stops')
    return true
  }

  /** Stops starting shadow work (shutdown). */
  stopShadow (): void {
    this.#runner.stop()
  }

  get shadowInFlight (): number {
    return this.#runner.inFlight
  }

  // ------------------------------------------------------------------------------------------
  // Reports for the admin listener.

  shadowSummary (route?: string): unknown[] | undefined {
    const guards = this.#select(route)
    return guards?.map((guard) => ({ ...guard.shadow.summary(), flag: guard.shadowRoute.flag, ignore: guard.route.shadow?.ignore ?? [], unordered: guard.route.shadow?.unordered ?? [] }))
  }

  mismatches (route?: string): Array<{ route: string, mismatches: readonly ShadowMismatch[] }> | undefined {
    return this.#select(route)?.map((guard) => ({ route: guard.name, mismatches: guard.shadow.mismatches() }))
  }

  breakers (): Array<{ route: string, tenant: string, state: BreakerState, coolDownLeftMs: number }> {
    const found: Array<{ route: string, tenant: string, state: BreakerState, coolDownLeftMs: number }> = []
    for (const guard of this.#guards) {
      for (const entry of guard.breaker.notClosed()) found.push({ route: guard.name, tenant: entry.key, state: entry.state, coolDownLeftMs: entry.coolDownLeftMs })
    }
    return found
  }

  #select (route: string | undefined): RouteGuard[] | undefined {
    if (route === undefined || route === '') return this.#guards
    const guard = this.#guards.find((candidate) => candidate.name === route)
    return guard === undefined ? undefined : [guard]
  }

  #onTransition (route: string, transition: BreakerTransition): void {
    this.#events.onBreakerTransition(route, transition)
    const detail = { route, tenant: transition.key, from: transition.from, to: transition.to, requests: transition.requests, failures: transition.failures }
    if (transition.to === 'open' && transition.from === 'closed') this.#logger.warn(detail, 'breaker tripped: this school is served by legacy on this route for the cool-down')
    else this.#logger.info(detail, `breaker ${transition.to}`)
  }

  #submitShadow (request: FastifyRequest, reply: FastifyReply, guard: RouteGuard): void {
    const capture = request.ficusCapture
    const head = request.method === 'HEAD'
    if (capture === null && !head) return
    if (capture?.overflowed === true) return this.#runner.drop(guard.shadow, 'too_large')
    if ((capture !== null && !capture.complete) || !reply.raw.writableFinished) return this.#runner.drop(guard.shadow, 'incomplete')
    const contentType = reply.getHeader('content-type')
    const encoding = reply.getHeader('content-encoding')
    this.#runner.submit({
      record: guard.shadow,
      rules: guard.rules,
      tenant: request.tenant.id,
      cohort: request.tenant.cohorts[0],
      requestId: request.id,
      method: request.method,
      url: request.url,
      headers: { ...request.headers },
      legacyStatus: reply.statusCode,
      legacyContentType: typeof contentType === 'string' ? contentType : undefined,
      legacyEncoding: typeof encoding === 'string' ? encoding : undefined,
      legacyBody: capture === null ? EMPTY : capture.body()
    })
  }

  async #replay (job: ShadowJob): Promise<{ status: number, contentType: string | undefined, body: Buffer }> {
    const app = this.#app
    if (app === undefined) throw new Error('the safety net is not installed')
    const headers = { ...job.headers }
    for (const name of NOT_FORWARDED_TO_SHADOW) delete headers[name]
    headers[INTERNAL_HEADER] = this.shadowMarker
    const response = await app.inject({ method: job.method as 'GET', url: job.url, headers: headers as Record<string, string> })
    const contentType = response.headers['content-type']
    return { status: response.statusCode, contentType: typeof contentType === 'string' ? contentType : undefined, body: response.rawPayload }
  }
}

function isStream (payload: unknown): payload is Readable {
  return typeof payload === 'object' && payload !== null && typeof (payload as { pipe?: unknown }).pipe === 'function'
}
