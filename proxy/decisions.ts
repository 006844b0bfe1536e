// GET /decisions?tenant=school-a on the admin listener: for every migrated route, the side it
// goes to for that school and why. What an engineer checks before and after a flip.
import { explainDecision, type DecisionExplanation } from '../flags/decide-backend.ts'
import type { Flags } from '../flags/flags.ts'
import type { MigratedRoute } from '../new-routes/route.ts'
import { routeAccess, type RouteAccess } from '../access/stage.ts'
import type { TenantRegistry } from '../tenants/registry.ts'

export interface RouteDecision extends DecisionExplanation, RouteAccess {
  readonly route: string
  readonly method: MigratedRoute['method']
  readonly url: string
}

export interface TenantDecisions {
  readonly tenant: { readonly id: string, readonly status: string, readonly cohorts: readonly string[] }
  readonly routes: readonly RouteDecision[]
}

export function decisionsFor (tenantId: string, parts: { registry: TenantRegistry, flags: Flags, routes: readonly MigratedRoute[], killSwitchFlag: string | undefined }): TenantDecisions | undefined {
  const tenant = parts.registry.get(tenantId)
  if (tenant === undefined) return undefined
  const routes = parts.routes.map((route) => ({
    route: route.name,
    method: route.method,
    url: route.url,
    // Who may call it once it is on the new side ('signed-in' when the route says nothing).
    ...routeAccess(route),
    ...explainDecision(parts.flags, route, { tenantId: tenant.id, cohorts: tenant.cohorts, route: route.name }, parts.killSwitchFlag)
  }))
  return { tenant: { id: tenant.id, status: tenant.status, cohorts: tenant.cohorts }, routes }
}
