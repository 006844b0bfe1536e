// The embedded default in memory: ONE PGlite database (PostgreSQL compiled to WebAssembly) for
// every school, each school in a schema of its own owned by a role of its own. A school's handle
// runs every statement in a transaction as that role (`SET LOCAL ROLE`) with only that schema on
// its search path, so its unqualified names are its own tables, and naming another school's
// schema is refused by PostgreSQL (no privilege on it). One instance instead of one per school:
// a PGlite instance costs over 100 MB and seconds to start, a schema a few milliseconds.
// Handlers are ficus's own code; the roles keep a mistake (a qualified name, a copied query)
// from reaching another school's rows, they are not a sandbox against code that resets the role.
import { PGlite } from '@electric-sql/pglite'
import type { Tenant } from '../tenants/tenant.ts'
import type { QueryResult, Row, TenantDatabase, TenantDatabases, TenantDatabasesStats, TenantTransaction } from './database.ts'
import { TenantDbErrors } from './errors.ts'
import { migrateDatabase } from './migrate.ts'
import type { Migration } from './migrate.ts'
import { INITDB_PARAMS, PARSERS, PgliteTransaction, POSTGRES_CONF, resultOf, useBaselineWasmCompilerOnly } from './pglite-databases.ts'

export interface PgliteSchemaTenantDatabasesOptions {
  /** The tenant migrations, applied in each school's schema when it is first used. */
  readonly migrations: readonly Migration[]
  /** Called once, when a school's schema is first created (e.g. to seed the demo). */
  readonly onCreate?: (db: TenantDatabase) => Promise<void>
}

type Use = <T>(work: (tx: Transaction) => Promise<T>) => Promise<T>
type Transaction = Parameters<Parameters<PGlite['transaction']>[0]>[0]

/** The schema (and role) of a school: `school_` and its id, which the registry keeps to [a-z0-9-]. */
export function schemaOf (tenantId: string): string {
  return `school_${tenantId}`
}

function quoted (identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}

export class PgliteSchemaTenantDatabases implements TenantDatabases {
  readonly kind = 'pglite'
  readonly #options: PgliteSchemaTenantDatabasesOptions
  #db: Promise<PGlite> | undefined
  readonly #schools = new Map<string, Promise<void>>()
  #closed = false

  constructor (options: PgliteSchemaTenantDatabasesOptions) {
    this.#options = options
    useBaselineWasmCompilerOnly()
  }

  database (tenant: Tenant): TenantDatabase {
    const tenantId = tenant.id
    return new SchemaTenantDatabase(tenantId, async (work) => {
      const db = await this.#ready(tenantId)
      return this.#asSchool(db, tenantId, work)
    })
  }

  stats (): TenantDatabasesStats {
    return { open: this.#db === undefined ? 0 : 1, closing: 0, busy: 0, waiting: 0 }
  }

  async close (): Promise<void> {
    this.#closed = true
    const db = await this.#db?.catch(() => undefined)
    if (db !== undefined && !db.closed) await db.close()
  }

  #instance (): Promise<PGlite> {
    this.#db ??= (async () => {
      const db = await PGlite.create({ parsers: PARSERS, postgresqlconf: POSTGRES_CONF, initDbStartParams: INITDB_PARAMS })
      // No school may create objects outside its own schema.
      await db.exec('REVOKE ALL ON SCHEMA public FROM PUBLIC')
      return db
    })()
    // A failed start is retried by the next request rather than cached.
    this.#db.catch(() => { this.#db = undefined })
    return this.#db
  }

  async #ready (tenantId: string): Promise<PGlite> {
    if (this.#closed) throw TenantDbErrors.FICUS_ERR_TENANT_DB_CLOSED()
    let db: PGlite
    try {
      db = await this.#instance()
    } catch (error) {
      throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(tenantId, { cause: error })
    }
    let school = this.#schools.get(tenantId)
    if (school === undefined) {
      school = this.#createSchool(db, tenantId)
      this.#schools.set(tenantId, school)
      school.catch(() => this.#schools.delete(tenantId))
    }
    await school
    return db
  }

  async #createSchool (db: PGlite, tenantId: string): Promise<void> {
    const name = quoted(schemaOf(tenantId))
    await db.transaction(async (tx) => {
      await tx.query(`CREATE ROLE ${name} NOLOGIN`)
      await tx.query(`CREATE SCHEMA ${name} AUTHORIZATION ${name}`)
    })
    const handle = new SchemaTenantDatabase(tenantId, (work) => this.#asSchool(db, tenantId, work))
    const result = await migrateDatabase(handle, this.#options.migrations)
    if (result.status === 'failed') throw TenantDbErrors.FICUS_ERR_MIGRATION_FAILED(`${tenantId}: ${result.error?.migration ?? ''} ${result.error?.message ?? ''}`)
    await this.#options.onCreate?.(handle)
  }

  #asSchool<T> (db: PGlite, tenantId: string, work: (tx: Transaction) => Promise<T>): Promise<T> {
    const name = quoted(schemaOf(tenantId))
    return db.transaction(async (tx) => {
      await tx.query(`SET LOCAL ROLE ${name}`)
      await tx.query(`SET LOCAL search_path TO ${name}`)
      return work(tx)
    })
  }
}

class SchemaTenantDatabase implements TenantDatabase {
  readonly tenantId: string
  readonly #use: Use

  constructor (tenantId: string, use: Use) {
    this.tenantId = tenantId
    this.#use = use
  }

  query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#use(async (tx) => resultOf(await tx.query<R>(text, values as unknown[] | undefined)))
  }

  transaction<T> (work: (tx: TenantTransaction) => Promise<T>): Promise<T> {
    return this.#use((tx) => work(new PgliteTransaction(tx, this.tenantId)))
  }
}
