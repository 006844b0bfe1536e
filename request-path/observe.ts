// Stage 8, observe: once answered, every request is counted (route, side, status, cohort,
// duration; and per legacy upstream) and written as one access-log line. Shadow replays count
// as the `shadow` side and are logged at debug level only. Pre-warm requests never come this way
// (they go straight through the legacy adapter's pools).
import { writeAccessLog } from '../metrics/access-log.ts'
import { countedRouteIndex, countedRouteName, type FicusMetrics } from '../metrics/registry.ts'
import type { Exchange } from './exchange.ts'
import type { Stage } from './stage.ts'

export class ObserveStage implements Stage {
  readonly name = 'observe'
  readonly #metrics: FicusMetrics
  readonly #accessLog: boolean

  constructor (metrics: FicusMetrics, accessLog: boolean) {
    this.#metrics = metrics
    this.#accessLog = accessLog
  }

  onResponse (exchange: Exchange): void {
    const { request, reply, guard, backend } = exchange
    const seconds = exchange.elapsedMs / 1000
    this.#metrics.observe(countedRouteIndex(guard, backend), backend, reply.statusCode, exchange.tenant?.cohorts[0], seconds)
    const upstream = exchange.legacyUpstream
    if (upstream !== undefined) this.#metrics.observeUpstream(upstream.index, reply.statusCode, seconds)
    if (this.#accessLog) writeAccessLog(request, reply, countedRouteName(guard, backend), backend)
  }
}
