// Stage 2, school: the Host header names the school. A missing, repeated or malformed Host is
// refused with 400, a school not in the registry (or not active) with ficus's own page, and
// nothing is forwarded for any of these; the bare base domain goes to legacy only with
// BARE_DOMAIN=legacy.
import { TenantErrors } from '../tenants/errors.ts'
import type { HostResolver } from '../tenants/host.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Exchange } from './exchange.ts'
import type { RequestOutcome, Stage } from './stage.ts'

export class SchoolStage implements Stage {
  readonly name = 'school'
  readonly #hosts: HostResolver
  readonly #registry: TenantRegistry
  readonly #bareDomainToLegacy: boolean

  /** `bareDomainToLegacy`: BARE_DOMAIN=legacy. */
  constructor (hosts: HostResolver, registry: TenantRegistry, bareDomainToLegacy: boolean) {
    this.#hosts = hosts
    this.#registry = registry
    this.#bareDomainToLegacy = bareDomainToLegacy
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const host = this.#hosts.resolve(exchange.request.headers.host)
    if (host.kind !== 'tenant') {
      // No school: only a session bound to none passes (serve.ts).
      if (host.kind === 'bare' && this.#bareDomainToLegacy) {
        exchange.backend = 'legacy'
        exchange.reason = 'bare-domain'
        return undefined
      }
      if (host.kind === 'malformed') return TenantErrors.FICUS_ERR_HOST_INVALID(host.reason)
      return TenantErrors.FICUS_ERR_TENANT_UNKNOWN()
    }
    const tenant = this.#registry.get(host.tenantId)
    if (tenant === undefined) return TenantErrors.FICUS_ERR_TENANT_UNKNOWN()
    if (tenant.status !== 'active') {
      return tenant.status === 'maintenance' ? TenantErrors.FICUS_ERR_TENANT_MAINTENANCE() : TenantErrors.FICUS_ERR_TENANT_SUSPENDED()
    }
    exchange.tenant = tenant
    return undefined
  }
}
