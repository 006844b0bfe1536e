// The contract between the edge and a migrated route: what a route declares next to its handler.
// It lives in the core because the edge, the safety nets, access, metrics and the console all read
// it, and `new-routes/` only provides values of it.
import type { AccessRule } from './access-rule.ts'
import type { FastifyRequest, FastifySchema, HTTPMethods, RouteGenericInterface, RouteHandlerMethod, RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression } from 'fastify'
import type { Duplex } from 'node:stream'

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
  /** Side once `flag` is truly gone from the flag source (README "Flags"); default 'keep-last'. */
  readonly whenFlagMissing?: 'keep-last' | 'legacy' | 'new'
  readonly schema?: FastifySchema
  /**
   * Who may call it (README "Who may call a migrated route"): `'public'`, `'signed-in'` (the
   * default when absent), `{ roles: [...] }` or a predicate on `request.user`. Enforced by the
   * edge before the handler runs.
   */
  readonly access?: AccessRule
  /** `false` only for machine clients with their own auth: no CSRF check on unsafe methods. */
  readonly csrf?: false
  /**
   * Shadow comparison of this route (README "Shadow traffic"): JSON paths to leave out
   * (`generatedAt`, `classes[].id`, `*.updatedAt`), arrays whose order means nothing
   * (`classes`), and the flag that puts a school in shadow (default `<flag>-shadow`).
   */
  readonly shadow?: { readonly ignore?: readonly string[], readonly unordered?: readonly string[], readonly flag?: string }
  /** GET/HEAD/OPTIONS served from legacy when the handler throws, answers 5xx or times out; default true. */
  readonly fallbackToLegacy?: boolean
  /** Deadline of the handler on GET/HEAD/OPTIONS, in ms; default NEW_HANDLER_TIMEOUT_MS. */
  readonly timeoutMs?: number
  /**
   * Accepts protocol upgrades (WebSocket) itself: called with the socket once the edge, the flag
   * and the access rules let the upgrade request through to the new side. Without it, an upgrade
   * the flag sends to the new side is refused (501 FICUS_ERR_UPGRADE_UNSUPPORTED).
   */
  readonly upgrade?: (request: FastifyRequest, socket: Duplex, head: Buffer) => void
  readonly handler: RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, G>
}

/** Declares a route with typed params, query and body, and erases them for the route list. */
export function migratedRoute<G extends RouteGenericInterface> (route: MigratedRoute<G>): MigratedRoute {
  return route as unknown as MigratedRoute
}
