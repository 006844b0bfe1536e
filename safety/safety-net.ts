// The safety nets' machinery, which the request path's stages use (request-path/): one guard per
// migrated route (breaker, shadow record, comparison rules, deadline), the shadow runner, the
// handlers running now (cancelled at shutdown), and the reports for the admin listener.
import type { RequestScope } from '../cancellation/request-scope.ts'
import type { CancelReason } from '../core/cancel-reason.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { BreakerState, BreakerTransition, SafetyEvents } from '../core/safety-events.ts'
import type { GuardedRoute } from '../flags/decide-backend.ts'
import { KeyedBreaker } from './breaker.ts'
import { CompiledRules } from './compare.ts'
import type { SafetyConfig } from './config.ts'
import { within } from './lifecycle.ts'
import { ShadowRecord, ShadowRunner, type ShadowMismatch, type ShadowReplay } from './shadow.ts'

export interface SafetyLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

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

export interface SafetyNetOptions {
  readonly config: SafetyConfig
  readonly events: SafetyEvents
  readonly logger: SafetyLogger
}

export class SafetyNet {
  readonly config: SafetyConfig
  /** Where fallbacks, shadow results, breaker transitions and cancellations are counted. */
  readonly events: SafetyEvents
  readonly logger: SafetyLogger
  readonly #guards: RouteGuard[] = []
  readonly #runner: ShadowRunner
  #replay: ShadowReplay | undefined
  /** Handlers running now, with their route's name: shutdown cancels them. */
  readonly #running = new Map<RequestScope, string>()

  constructor (options: SafetyNetOptions) {
    this.config = options.config
    this.events = options.events
    this.logger = options.logger
    this.#runner = new ShadowRunner({
      concurrency: options.config.shadow.concurrency,
      replay: async (job) => {
        if (this.#replay === undefined) throw new Error('no request path replays shadow work')
        return await this.#replay(job)
      },
      sink: options.events,
      onFailure: (error, job) => this.logger.warn({ err: (error as Error).message, route: job.record.route, tenant: job.tenant }, 'shadow replay failed')
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

  /** How shadow work is replayed on the new side: the request path's shadow stage. */
  replayWith (replay: ShadowReplay): void {
    this.#replay = replay
  }

  get shadowRunner (): ShadowRunner {
    return this.#runner
  }

  /** Whether there is room for one more shadow comparison; when not, the drop is counted. */
  roomForShadow (guard: RouteGuard): boolean {
    if (this.#runner.hasRoom()) return true
    this.#runner.drop(guard.shadow, 'busy')
    return false
  }

  /** Remembers a running handler until it settles, so shutdown can cancel it. */
  track (scope: RequestScope, route: string): void {
    this.#running.set(scope, route)
    void scope.settled.then(() => this.#running.delete(scope))
  }

  /** Fires the signal of every handler still running; returns how many were running. */
  cancelRunning (reason: CancelReason): number {
    let cancelled = 0
    for (const [scope, route] of this.#running) if (this.cancel(scope, route, reason)) cancelled++
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

  /** Fires a scope's signal (client gone, deadline, shutdown), counted and logged; false when it had fired already. */
  cancel (scope: RequestScope, route: string | undefined, reason: CancelReason): boolean {
    if (!scope.cancel(reason)) return false
    if (route !== undefined) this.events.onCancelled(route, reason)
    const committedWrites = scope.committedWrites
    // What it committed before the cut stays done, whatever the client is told: say so.
    if (committedWrites > 0) this.logger.warn({ reqId: scope.requestId, route, reason, committedWrites }, 'request cancelled after it committed a write: that write is done')
    else this.logger.info({ reqId: scope.requestId, route, reason }, 'request cancelled: its work stops')
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
    this.events.onBreakerTransition(route, transition)
    const detail = { route, tenant: transition.key, from: transition.from, to: transition.to, requests: transition.requests, failures: transition.failures }
    if (transition.to === 'open' && transition.from === 'closed') this.logger.warn(detail, 'breaker tripped: this school is served by legacy on this route for the cool-down')
    else this.logger.info(detail, `breaker ${transition.to}`)
  }
}
