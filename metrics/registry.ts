// ficus's Prometheus metrics on a registry of its own (never prom-client's global one). Request
// counts and latencies are recorded per request into preallocated arrays (no label hashing, no
// allocation on the hot path) and turned into series only when /metrics is scraped. Labels are
// bounded: routes are the declared list, cohorts are capped, and no label ever names a school.
import { collectDefaultMetrics, Counter, Registry, type Metric } from 'prom-client'
import type { BackendLabel, FallbackReason } from '../core/backend.ts'
import { CANCEL_REASONS, type CancelReason } from '../core/cancel-reason.ts'
import type { BreakerTransition, SafetyEvents, ShadowDropReason, ShadowOutcome } from '../core/safety-events.ts'

export const BACKENDS: readonly BackendLabel[] = ['legacy', 'new', 'fallback', 'shadow', 'none']
const BACKEND_INDEX: Readonly<Record<BackendLabel, number>> = { legacy: 0, new: 1, fallback: 2, shadow: 3, none: 4 }
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
/** Seconds; a proxied page is tens of milliseconds, a report or a download can be many seconds. */
export const LATENCY_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Route label of requests ficus answered before finding a route (bad path, unknown school). */
export const ROUTE_NONE = 'none'
/** Route label of everything no migrated route claims. */
export const ROUTE_UNMIGRATED = 'unmigrated'
/** The route index and label a request is counted under: its migrated route's, else none or unmigrated. */
export function countedRouteIndex (guard: { readonly index: number } | null | undefined, backend: BackendLabel): number {
  return guard != null ? FicusMetrics.FIRST_ROUTE + guard.index : backend === 'none' ? 0 : 1
}

export function countedRouteName (guard: { readonly name: string } | null | undefined, backend: BackendLabel): string {
  return guard != null ? guard.name : backend === 'none' ? ROUTE_NONE : ROUTE_UNMIGRATED
}

export const COHORT_NONE = 'none'
export const COHORT_OTHER = 'other'
export const DEFAULT_MAX_COHORTS = 20

export interface FicusMetricsOptions {
  /** Names of the migrated routes, in the order their index refers to. */
  readonly routes: readonly string[]
  /** Names of the legacy upstreams (configured, so bounded), in the order their index refers to. */
  readonly upstreams?: readonly string[]
  /** Distinct cohort label values; cohorts seen after that are counted as `other`. */
  readonly maxCohorts?: number
  /** Process metrics (CPU, memory, event loop lag, handles); default true. */
  readonly processMetrics?: boolean
}

export interface TenantPoolStats {
  readonly open: number
  readonly closing: number
  readonly busy: number
  readonly waiting: number
}

interface MetricValue {
  readonly value: number
  readonly labels: Record<string, string | number>
  readonly metricName?: string
}

/** A metric whose values are computed when scraped; prom-client formats it like its own. */
class ComputedMetric {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  readonly aggregator = 'sum'
  readonly #values: () => MetricValue[]

  constructor (name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => MetricValue[]) {
    this.name = name
    this.help = help
    this.type = type
    this.#values = values
  }

  get (): { name: string, help: string, type: string, aggregator: string, values: MetricValue[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.#values() }
  }
}

export class FicusMetrics implements SafetyEvents {
  readonly registry = new Registry()
  /** Index of the first migrated route: 0 and 1 are `none` and `unmigrated`. */
  static readonly FIRST_ROUTE = 2
  readonly #routes: readonly string[]
  readonly #cohorts = new Map<string, number>([[COHORT_NONE, 0]])
  readonly #cohortNames: string[] = [COHORT_NONE]
  readonly #maxCohorts: number
  readonly #cohortSlots: number
  readonly #requests: Float64Array
  readonly #buckets: Float64Array
  readonly #sums: Float64Array
  readonly #counts: Float64Array
  readonly #upstreams: readonly string[]
  readonly #upstreamRequests: Float64Array
  readonly #upstreamSums: Float64Array
  readonly #shadow: Counter<'route' | 'cohort' | 'outcome'>
  readonly #shadowDropped: Counter<'route' | 'reason'>
  readonly #fallbacks: Counter<'route' | 'reason'>
  readonly #cancellations: Counter<'route' | 'reason'>
  readonly #trips: Counter<'route'>

  constructor (options: FicusMetricsOptions) {
    this.#routes = [ROUTE_NONE, ROUTE_UNMIGRATED, ...options.routes]
    this.#maxCohorts = options.maxCohorts ?? DEFAULT_MAX_COHORTS
    // none + the capped cohorts + other
    this.#cohortSlots = this.#maxCohorts + 2
    const pairs = this.#routes.length * BACKENDS.length
    this.#requests = new Float64Array(pairs * STATUS_CLASSES.length * this.#cohortSlots)
    this.#buckets = new Float64Array(pairs * LATENCY_BUCKETS.length)
    this.#sums = new Float64Array(pairs)
    this.#counts = new Float64Array(pairs)
    this.#upstreams = options.upstreams ?? []
    this.#upstreamRequests = new Float64Array(this.#upstreams.length * STATUS_CLASSES.length)
    this.#upstreamSums = new Float64Array(this.#upstreams.length)
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'ficus_' })

    this.#register(new ComputedMetric('ficus_requests_total', 'Requests answered, by route, backend (legacy, new, fallback, shadow, none = ficus itself), status class and school cohort', 'counter', () => this.#requestValues()))
    this.#register(new ComputedMetric('ficus_request_duration_seconds', 'Time from the request to the last byte of the response, by route and backend', 'histogram', () => this.#latencyValues()))
    this.#register(new ComputedMetric('ficus_legacy_requests_total', 'Requests forwarded to legacy, by legacy upstream and status class (including ficus\'s own 502/504 for that upstream)', 'counter', () => this.#upstreamValues()))
    this.#register(new ComputedMetric('ficus_legacy_request_seconds_total', 'Time spent on the requests forwarded to legacy (request to last byte), by legacy upstream', 'counter', () =>
      this.#upstreams.map((upstream, u) => ({ value: this.#upstreamSums[u] ?? 0, labels: { upstream } }))))
    this.#shadow = new Counter({ name: 'ficus_shadow_comparisons_total', help: 'Shadow comparisons of the new handler with legacy, by route, cohort and outcome (match, mismatch, error)', labelNames: ['route', 'cohort', 'outcome'], registers: [this.registry] })
    this.#shadowDropped = new Counter({ name: 'ficus_shadow_dropped_total', help: 'Shadow comparisons not made, by route and reason (busy, too_large, incomplete, draining)', labelNames: ['route', 'reason'], registers: [this.registry] })
    this.#fallbacks = new Counter({ name: 'ficus_fallbacks_total', help: 'Requests served from legacy because the new handler failed before sending, by route and reason (error, status, timeout)', labelNames: ['route', 'reason'], registers: [this.registry] })
    this.#cancellations = new Counter({ name: 'ficus_cancellations_total', help: 'Running new handlers whose work was cancelled, by route and reason (client, deadline, shutdown)', labelNames: ['route', 'reason'], registers: [this.registry] })
    this.#trips = new Counter({ name: 'ficus_breaker_trips_total', help: 'Times a (route, school) breaker opened, by route', labelNames: ['route'], registers: [this.registry] })
    for (const route of options.routes) {
      this.#fallbacks.inc({ route, reason: 'error' }, 0)
      for (const reason of CANCEL_REASONS) this.#cancellations.inc({ route, reason }, 0)
      this.#trips.inc({ route }, 0)
    }
  }

  get contentType (): string {
    return this.registry.contentType
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  /** Records one request that went to the legacy upstream at `index` (LegacyUpstream.index). */
  observeUpstream (index: number, status: number, seconds: number): void {
    if (index >= this.#upstreams.length) return
    const statusClass = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1
    const slot = index * STATUS_CLASSES.length + statusClass
    this.#upstreamRequests[slot] = (this.#upstreamRequests[slot] ?? 0) + 1
    this.#upstreamSums[index] = (this.#upstreamSums[index] ?? 0) + seconds
  }

  #upstreamValues (): MetricValue[] {
    const values: MetricValue[] = []
    this.#upstreams.forEach((upstream, u) => {
      STATUS_CLASSES.forEach((statusClass, s) => {
        const value = this.#upstreamRequests[u * STATUS_CLASSES.length + s] ?? 0
        if (value > 0) values.push({ value, labels: { upstream, status_class: statusClass } })
      })
    })
    return values
  }

  /**
   * Records one answered request. `route` is an index: 0 none, 1 unmigrated, FIRST_ROUTE + i
   * for the i-th migrated route. Allocates nothing once the school's cohort has been seen.
   */
  observe (route: number, backend: BackendLabel, status: number, cohort: string | undefined, seconds: number): void {
    const pair = route * BACKENDS.length + BACKEND_INDEX[backend]
    const statusClass = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1
    const requests = this.#requests
    const slot = (pair * STATUS_CLASSES.length + statusClass) * this.#cohortSlots + this.#cohortIndex(cohort)
    requests[slot] = (requests[slot] ?? 0) + 1
    // Past the last bound a request is counted only in +Inf, which is the total count.
    const buckets = this.#buckets
    const base = pair * LATENCY_BUCKETS.length
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      if (seconds <= (LATENCY_BUCKETS[i] as number)) {
        buckets[base + i] = (buckets[base + i] ?? 0) + 1
        break
      }
    }
    this.#sums[pair] = (this.#sums[pair] ?? 0) + seconds
    this.#counts[pair] = (this.#counts[pair] ?? 0) + 1
  }

  /** The label a cohort is counted under (for tests and for the log). */
  cohortLabel (cohort: string | undefined): string {
    return this.#cohortNames[this.#cohortIndex(cohort)] ?? COHORT_OTHER
  }

  #cohortIndex (cohort: string | undefined): number {
    if (cohort === undefined) return 0
    const known = this.#cohorts.get(cohort)
    if (known !== undefined) return known
    if (this.#cohortNames.length > this.#maxCohorts) return this.#cohortSlots - 1
    const index = this.#cohortNames.length
    this.#cohorts.set(cohort, index)
    this.#cohortNames.push(cohort)
    return index
  }

  // ------------------------------------------------------------------------------------------
  // Safety events.

  onShadowResult (route: string, cohort: string | undefined, outcome: ShadowOutcome): void {
    this.#shadow.inc({ route, cohort: this.cohortLabel(cohort), outcome })
  }

  onShadowDropped (route: string, reason: ShadowDropReason): void {
    this.#shadowDropped.inc({ route, reason })
  }

  onCancelled (route: string, reason: CancelReason): void {
    this.#cancellations.inc({ route, reason })
  }

  onFallback (route: string, reason: FallbackReason): void {
    this.#fallbacks.inc({ route, reason })
  }

  onBreakerTransition (route: string, transition: BreakerTransition): void {
    if (transition.to === 'open' && transition.from === 'closed') this.#trips.inc({ route })
  }

  // ------------------------------------------------------------------------------------------
  // Gauges read when scraped.

  /** A gauge whose value (or values by one label) is read at scrape time; undefined = no sample. */
  addGauge (name: string, help: string, read: () => number | undefined): void {
    this.#register(new ComputedMetric(name, help, 'gauge', () => {
      const value = read()
      return value === undefined ? [] : [{ value, labels: {} }]
    }))
  }

  addLabelledGauge (name: string, help: string, read: () => ReadonlyArray<{ labels: Record<string, string>, value: number }>): void {
    this.#register(new ComputedMetric(name, help, 'gauge', () => read().map((sample) => ({ value: sample.value, labels: { ...sample.labels } }))))
  }

  /** A counter whose values (by label) are read when scraped. */
  addLabelledCounter (name: string, help: string, read: () => ReadonlyArray<{ labels: Record<string, string>, value: number }>): void {
    this.#register(new ComputedMetric(name, help, 'counter', () => read().map((sample) => ({ value: sample.value, labels: { ...sample.labels } }))))
  }

  /** Flag freshness: seconds since the source last confirmed the flags, readiness, reachability. */
  addFlags (status: () => { ready: boolean, staleForMs: number | undefined, sourceReachable: boolean }): void {
    this.addGauge('ficus_flags_stale_seconds', 'Seconds since the flag source last confirmed the flags (absent before the first confirmation)', () => {
      const stale = status().staleForMs
      return stale === undefined ? undefined : stale / 1000
    })
    this.addGauge('ficus_flags_ready', '1 once flags are loaded', () => (status().ready ? 1 : 0))
    this.addGauge('ficus_flags_source_reachable', '1 while the flag source answers', () => (status().sourceReachable ? 1 : 0))
  }

  /**
   * Flags that must not flip by accident: route flags the source stopped listing (held with their
   * last definition) and a refused API token (flags stale, still retried).
   */
  addFlagTrust (read: () => { missingNow: number, authRejected: boolean, missing: ReadonlyMap<string, number>, authFailures: number }): void {
    this.addGauge('ficus_flags_missing', 'Route flags the flag source no longer lists, deciding with their last known definition', () => read().missingNow)
    this.#register(new ComputedMetric('ficus_flags_missing_total', 'Times a route flag went missing from the flag source, by flag', 'counter',
      () => [...read().missing].map(([flag, value]) => ({ value, labels: { flag } }))))
    this.addGauge('ficus_flags_auth_rejected', '1 while the Unleash server refuses the API token (401/403): flags are stale', () => (read().authRejected ? 1 : 0))
    this.#register(new ComputedMetric('ficus_flags_auth_failures_total', 'Answers of the Unleash server that refused the API token (401/403)', 'counter',
      () => [{ value: read().authFailures, labels: {} }]))
  }

  /** Breaker state counts per route: how many schools are open and half-open. */
  addBreakers (read: () => ReadonlyArray<{ route: string, open: number, halfOpen: number }>): void {
    this.addLabelledGauge('ficus_breaker_schools', 'Schools whose breaker is not closed, by route and state (open, half-open)', () => read().flatMap((entry) => [
      { labels: { route: entry.route, state: 'open' }, value: entry.open },
      { labels: { route: entry.route, state: 'half-open' }, value: entry.halfOpen }
    ]))
  }

  /** The schools' database pools, when the per-school database is configured. */
  addTenantPools (stats: () => TenantPoolStats): void {
    this.addLabelledGauge('ficus_tenant_pools', 'Per-school database pools, by state (open, closing, busy, waiting = callers waiting for a pool)', () => {
      const now = stats()
      return [
        { labels: { state: 'open' }, value: now.open },
        { labels: { state: 'closing' }, value: now.closing },
        { labels: { state: 'busy' }, value: now.busy },
        { labels: { state: 'waiting' }, value: now.waiting }
      ]
    })
  }

  /**
   * Requests of one migrated route so far, by cohort label: served new, legacy, by fallback, and
   * answered 5xx. Read by the console (which takes differences over time); undefined for an
   * unknown route.
   */
  requestCounts (route: string): Array<{ cohort: string, new: number, legacy: number, fallback: number, errors: number }> | undefined {
    const r = this.#routes.indexOf(route)
    if (r < FicusMetrics.FIRST_ROUTE) return undefined
    const rows = []
    for (let c = 0; c < this.#cohortSlots; c++) {
      const cohort = c === this.#cohortSlots - 1 ? COHORT_OTHER : this.#cohortNames[c]
      if (cohort === undefined) continue
      const row = { cohort, new: 0, legacy: 0, fallback: 0, errors: 0 }
      for (const backend of ['new', 'legacy', 'fallback'] as const) {
        for (let s = 0; s < STATUS_CLASSES.length; s++) {
          const value = this.#requests[(((r * BACKENDS.length + BACKEND_INDEX[backend]) * STATUS_CLASSES.length) + s) * this.#cohortSlots + c] ?? 0
          row[backend] += value
          if (s === 4) row.errors += value
        }
      }
      rows.push(row)
    }
    return rows
  }

  #register (metric: ComputedMetric): void {
    this.registry.registerMetric(metric as unknown as Metric)
  }

  #requestValues (): MetricValue[] {
    const values: MetricValue[] = []
    for (let r = 0; r < this.#routes.length; r++) {
      for (let b = 0; b < BACKENDS.length; b++) {
        for (let s = 0; s < STATUS_CLASSES.length; s++) {
          const base = (((r * BACKENDS.length + b) * STATUS_CLASSES.length) + s) * this.#cohortSlots
          for (let c = 0; c < this.#cohortSlots; c++) {
            const value = this.#requests[base + c] ?? 0
            if (value === 0) continue
            const cohort = c === this.#cohortSlots - 1 ? COHORT_OTHER : this.#cohortNames[c] ?? COHORT_OTHER
            values.push({ value, labels: { route: this.#routes[r] as string, backend: BACKENDS[b] as string, status_class: STATUS_CLASSES[s] as string, cohort } })
          }
        }
      }
    }
    return values
  }

  #latencyValues (): MetricValue[] {
    const values: MetricValue[] = []
    for (let r = 0; r < this.#routes.length; r++) {
      for (let b = 0; b < BACKENDS.length; b++) {
        const pair = r * BACKENDS.length + b
        const count = this.#counts[pair] ?? 0
        if (count === 0) continue
        const labels = { route: this.#routes[r] as string, backend: BACKENDS[b] as string }
        let cumulative = 0
        for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
          cumulative += this.#buckets[pair * LATENCY_BUCKETS.length + i] ?? 0
          values.push({ metricName: 'ficus_request_duration_seconds_bucket', value: cumulative, labels: { ...labels, le: LATENCY_BUCKETS[i] as number } })
        }
        values.push({ metricName: 'ficus_request_duration_seconds_bucket', value: count, labels: { ...labels, le: '+Inf' } })
        values.push({ metricName: 'ficus_request_duration_seconds_sum', value: this.#sums[pair] ?? 0, labels })
        values.push({ metricName: 'ficus_request_duration_seconds_count', value: count, labels })
      }
    }
    return values
  }
}
