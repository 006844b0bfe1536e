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
  // Keyed by the inner registry's frozen objects: a new snapshot brings new keys, and the old
  // wrappers go with the old snapshot.
  readonly #bound = new WeakMap<Tenant, TenantWithDatabase>()

  constructor (inner: TenantRegistry, databases: TenantDatabases) {
    this.#inner = inner
    this.#databases = databases
  }

  get source (): string { return this.#inner.source }
  get size (): number { return this.#inner.size }
  get version (): number { return this.#inner.version }

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
    let bound = this.#bound.get(tenant)
    if (bound === undefined) {
      const copy = { ...tenant }
      // Not enumerable: logging or serialising a tenant does not walk into its database handle.
      Object.defineProperty(copy, 'db', { value: this.#databases.database(tenant), enumerable: false })
      bound = Object.freeze(copy) as TenantWithDatabase
      this.#bound.set(tenant, bound)
    }
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
