// "Share of recent requests served new": the metrics registry counts requests since start, per
// route and cohort; this keeps a snapshot every SNAPSHOT_MS and answers with the difference
// over the last WINDOW_MS (or since start, until the window has filled), every cohort of a route
// at once.
import type { FicusMetrics } from '../metrics/registry.ts'

const SNAPSHOT_MS = 15_000
const WINDOW_MS = 5 * 60_000

export interface RequestShare {
  readonly total: number
  readonly servedNew: number
  readonly fallbacks: number
  readonly errors: number
  readonly windowMs: number
}

/** Every cohort's share of one route, from one read of the metrics. */
export interface CohortShares {
  readonly windowMs: number
  readonly byCohort: ReadonlyArray<readonly [string, RequestShare]>
}

type Counts = Map<string, Map<string, { new: number, legacy: number, fallback: number, errors: number }>>

export class RecentRequests {
  readonly #metrics: FicusMetrics | undefined
  readonly #routes: readonly string[]
  readonly #snapshots: Array<{ at: number, counts: Counts }> = []
  #timer: NodeJS.Timeout | undefined

  constructor (metrics: FicusMetrics | undefined, routes: readonly string[]) {
    this.#metrics = metrics
    this.#routes = routes
    if (metrics === undefined) return
    this.#snapshots.push({ at: Date.now(), counts: this.#read() })
    this.#timer = setInterval(() => {
      this.#snapshots.push({ at: Date.now(), counts: this.#read() })
      while (this.#snapshots.length > 1 && (this.#snapshots[1]?.at ?? 0) <= Date.now() - WINDOW_MS) this.#snapshots.shift()
    }, SNAPSHOT_MS)
    this.#timer.unref()
  }

  shares (route: string): CohortShares | undefined {
    const first = this.#snapshots[0]
    if (this.#metrics === undefined || first === undefined) return undefined
    const windowMs = Date.now() - first.at
    const byCohort = (this.#metrics.requestCounts(route) ?? []).map((now) => {
      const then = first.counts.get(route)?.get(now.cohort) ?? { new: 0, legacy: 0, fallback: 0, errors: 0 }
      const servedNew = now.new - then.new
      const fallbacks = now.fallback - then.fallback
      return [now.cohort, { total: servedNew + now.legacy - then.legacy + fallbacks, servedNew, fallbacks, errors: now.errors - then.errors, windowMs }] as const
    })
    return { windowMs, byCohort }
  }

  close (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
  }

  #read (): Counts {
    const counts: Counts = new Map()
    for (const route of this.#routes) counts.set(route, new Map((this.#metrics?.requestCounts(route) ?? []).map((row) => [row.cohort, row])))
    return counts
  }
}
