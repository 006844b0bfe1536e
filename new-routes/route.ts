import type { FastifySchema, HTTPMethods, RouteGenericInterface, RouteHandlerMethod, RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression } from 'fastify'

/**
 * A migrated route, declared next to its handler. The edge registers it at `url`, asks `flag`
 * for every request that matches, and runs `handler` when the flag is on for the school;
 * otherwise the request goes to the legacy app untouched.
 */
export interface MigratedRoute<G extends RouteGenericInterface = RouteGenericInterface> {
  /** Stable name for logs, metrics and /decisions, e.g. `attendance.page`. */
  readonly name: string
  readonly method: HTTPMethods | readonly HTTPMethods[]
  /** Path pattern in fastify's syntax (`/attendance/:classId`); matched case-insensitively. */
  readonly url: string
  /** The feature flag that moves this route to the new handler. */
  readonly flag: string
  /** Optional Unleash kill-switch flag of this route: when on, the route stays on legacy. */
  readonly killSwitch?: string
  readonly schema?: FastifySchema
  readonly handler: RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, G>
}

/** Declares a route with typed params, query and body, and erases them for the route list. */
export function migratedRoute<G extends RouteGenericInterface> (route: MigratedRoute<G>): MigratedRoute {
  return route as unknown as MigratedRoute
}
