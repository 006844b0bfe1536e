// The query surface a handler gets for its school: parameterised queries and transactions, the
// same on a PostgreSQL pool and on an in-process PGlite database.
import type { Tenant } from '../tenants/tenant.ts'

export interface QueryResult<R> {
  readonly rows: R[]
  /** Rows returned, or rows changed by INSERT/UPDATE/DELETE without RETURNING. */
  readonly rowCount: number
}

export type Row = Record<string, unknown>

export interface TenantQueryable {
  /** One statement, `$1`-style parameters; never a named prepared statement. */
  query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>>
}

export interface TenantTransaction extends TenantQueryable {
  /** Runs a script of several statements without parameters (migrations). */
  exec (script: string): Promise<void>
}

export interface TenantDatabase extends TenantQueryable {
  /** The school this handle is bound to; it cannot reach any other. */
  readonly tenantId: string
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T> (work: (tx: TenantTransaction) => Promise<T>): Promise<T>
}

export interface TenantDatabasesStats {
  /** Pools (or embedded databases) open now, at most the configured cap. */
  readonly open: number
  /** Taken out of service, still closing or still finishing a query. */
  readonly closing: number
  /** Open ones with a query or transaction in flight. */
  readonly busy: number
  /** Callers waiting for a pool because every slot is busy. */
  readonly waiting: number
}

/** Gives out database handles for schools, opening what they need lazily and within bounds. */
export interface TenantDatabases {
  readonly kind: 'postgres' | 'pglite'
  /** A handle bound to this school; cheap, opens nothing until its first query. */
  database (tenant: Tenant): TenantDatabase
  stats (): TenantDatabasesStats
  close (): Promise<void>
}
