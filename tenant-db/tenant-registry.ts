// Puts `db` on the tenants a registry hands out, so the edge's `request.tenant = registry.get(id)`
// gives every handler its own school's database and no other. Each tenant object is wrapped once
// per registry snapshot (the wrapper is cached against the snapshot's frozen object), so a request
// allocates nothing; the pool behind the handle opens on its first query.
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Tenant } from '../tenants/tenant.ts'
import type { TenantDatabase, TenantDatabases, TenantDatabasesStats } from './database.ts'
import { TenantDbErrors } from './errors.ts'

declare module '../tenants/tenant.ts' {
  interface Tenant {
    /** The school's own database; set on tenants of a registry wrapped by `withTenantDatabases`. */
    readonly db?: TenantDatabase
  }
}

/** A tenant whose `db` is known to be there. */
export type TenantWithDatabase = Tenant & { readonly db: TenantDatabase }

export class DatabaseTenantRegistry implements TenantRegistry {
  readonly #inner: TenantRegistry
  readonly #databases: TenantDatabases
  // Keyed by school id (a string key is cheaper to look up per request than an object key); a
  // wrapper is reused only while the inner registry hands out the same frozen object, so a new
  // snapshot rewraps its schools.
  readonly #bound = new Map<string, { readonly from: Tenant, readonly bound: TenantWithDatabase }>()

  constructor (inner: TenantRegistry, databases: TenantDatabases) {
    this.#inner = inner
    this.#databases = databases
  }

  get source (): string { return this.#inner.source }
  get size (): number { return this.#inner.size }

  start (): Promise<void> {
    return this.#inner.start()
  }

  reload (): void {
    this.#inner.reload?.()
  }

  get (id: string): TenantWithDatabase | undefined {
    const tenant = this.#inner.get(id)
    return tenant === undefined ? undefined : this.#bind(tenant)
  }

  * all (): Iterable<TenantWithDatabase> {
    for (const tenant of this.#inner.all()) yield this.#bind(tenant)
  }

  /** Pools (or embedded databases) open, closing, busy and waited for: for the metrics gauges. */
  databaseStats (): TenantDatabasesStats {
    return this.#databases.stats()
  }

  /** Closes the registry, then every school database. */
  async close (): Promise<void> {
    try {
      await this.#inner.close()
    } finally {
      await this.#databases.close()
    }
  }

  #bind (tenant: Tenant): TenantWithDatabase {
    const known = this.#bound.get(tenant.id)
    if (known !== undefined && known.from === tenant) return known.bound
    const copy = { ...tenant }
    // Not enumerable: logging or serialising a tenant does not walk into its database handle.
    Object.defineProperty(copy, 'db', { value: this.#databases.database(tenant), enumerable: false })
    const bound = Object.freeze(copy) as TenantWithDatabase
    // Schools removed from the registry would stay here for good: start afresh once the map
    // holds clearly more ids than the registry.
    if (known === undefined && this.#bound.size > 2 * this.#inner.size + 64) this.#bound.clear()
    this.#bound.set(tenant.id, { from: tenant, bound })
    return bound
  }
}

export function withTenantDatabases (registry: TenantRegistry, databases: TenantDatabases): DatabaseTenantRegistry {
  return new DatabaseTenantRegistry(registry, databases)
}

/** The school's database of a request's tenant; a registry without databases is a setup error. */
export function tenantDatabase (tenant: Tenant): TenantDatabase {
  const db = tenant.db
  if (db === undefined) throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNCONFIGURED(`${tenant.id} (registry not wrapped by withTenantDatabases)`)
  return db
}
