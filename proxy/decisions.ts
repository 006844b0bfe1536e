// GET /decisions?tenant=school-a on the admin listener: for every migrated route, the side it
// goes to for that school and why. What an engineer checks before and after a flip.
import { explainDecision, type DecisionExplanation } from '../flags/decide-backend.ts'
import type { Flags } from '../flags/flags.ts'
import type { MigratedRoute } from '../core/route.ts'
import { routeAccess, type RouteAccess } from '../access/stage.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { LegacyRouter } from '../legacy-adapter/upstreams.ts'

export interface RouteDecision extends DecisionExplanation, RouteAccess {
  readonly route: string
  readonly method: MigratedRoute['method']
  readonly url: string
  /** The legacy upstream this school's requests of the route go to on the legacy side (shadow, fallback). */
  readonly legacyUpstream?: string
}

export interface TenantDecisions {
  readonly tenant: { readonly id: string, readonly status: string, readonly cohorts: readonly string[] }
  readonly routes: readonly RouteDecision[]
  /** Declared routes whose flag the flag source does not have: they stay on legacy everywhere. */
  readonly warnings: readonly RouteFlagWarning[]
}

export interface RouteFlagWarning {
  readonly route: string
  readonly flag: string
  readonly message: string
}

/** Routes whose flag is missing from the current flags; empty until flags are loaded. */
export function missingRouteFlags (flags: Pick<Flags, 'isReady' | 'knows' | 'source'>, routes: readonly MigratedRoute[]): RouteFlagWarning[] {
  if (!flags.isReady()) return []
  return routes.filter((route) => !flags.knows(route.flag)).map((route) => ({
    route: route.name,
    flag: route.flag,
    message: `route ${route.name} is guarded by the flag ${route.flag}, which ${flags.source} does not define: the route stays on legacy for every school`
  }))
}

export function decisionsFor (tenantId: string, parts: { registry: TenantRegistry, flags: Flags, routes: readonly MigratedRoute[], killSwitchFlag: string | undefined, legacyRouter?: LegacyRouter }): TenantDecisions | undefined {
  const tenant = parts.registry.get(tenantId)
  if (tenant === undefined) return undefined
  const routes = parts.routes.map((route) => ({
    route: route.name,
    method: route.method,
    url: route.url,
    ...(parts.legacyRouter === undefined ? {} : { legacyUpstream: parts.legacyRouter.pick(staticPrefix(route.url), tenant.legacy)?.name ?? `none: shard ${String(tenant.legacy)} is not in LEGACY_UPSTREAMS` }),
    // Who may call it once it is on the new side ('signed-in' when the route says nothing).
    ...routeAccess(route),
    ...explainDecision(parts.flags, route, { tenantId: tenant.id, cohorts: tenant.cohorts, route: route.name }, parts.killSwitchFlag)
  }))
  return { tenant: { id: tenant.id, status: tenant.status, cohorts: tenant.cohorts }, routes, warnings: missingRouteFlags(parts.flags, parts.routes) }
}

// The part of a route pattern before its first parameter or wildcard: legacy prefixes are paths,
// so the upstream of `/reports/:id` is the upstream of `/reports/`.
function staticPrefix (url: string): string {
  const cut = url.search(/[:*]/)
  return cut === -1 ? url : url.slice(0, cut)
}
