// Stage 3, route: fastify's router has matched the canonical path (case-insensitively, with or
// without one trailing slash). A migrated route brings its guard (flag, breaker, shadow record,
// deadline: safety/safety-net.ts); every other path, any method, is legacy's.
import type { RouteGuard } from '../safety/safety-net.ts'
import type { Exchange } from './exchange.ts'
import type { RequestOutcome, Stage } from './stage.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    routeGuard?: RouteGuard
  }
}

export class RouteStage implements Stage {
  readonly name = 'route'

  onRequest (exchange: Exchange): RequestOutcome {
    // The bare domain has no school, hence no migrated route.
    if (exchange.tenant === undefined) return undefined
    const config = exchange.request.routeOptions.config
    const guard = config.routeGuard
    if (guard === undefined) {
      exchange.backend = 'legacy'
      exchange.reason = 'unmigrated'
      return undefined
    }
    exchange.guard = guard
    return undefined
  }
}
