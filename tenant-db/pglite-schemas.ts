// The embedded default in memory: ONE PGlite database (PostgreSQL compiled to WebAssembly) for
// every school, each school in a schema of its own owned by a role of its own. A school's handle
// runs every statement in a transaction as that role (`SET LOCAL ROLE`) with only that schema on
// its search path, so its unqualified names are its own tables, and naming another school's
// schema is refused by PostgreSQL (no privilege on it). One instance instead of one per school:
// a PGlite instance costs over 100 MB and seconds to start, a schema a few milliseconds.
// Handlers are ficus's own code; the roles keep a mistake (a qualified name, a copied query)
// from reaching another school's rows, they are not a sandbox against code that resets the role.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { cp, mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PGlite } from '@electric-sql/pglite'
import type { Tenant } from '../tenants/tenant.ts'
import type { QueryResult, Row, TenantDatabase, TenantDatabases, TenantDatabasesStats, TenantTransaction } from './database.ts'
import { TenantDbErrors } from './errors.ts'
import { migrateDatabase } from './migrate.ts'
import type { Migration } from './migrate.ts'
import { PARSERS, PgliteTransaction, POSTGRES_CONF, resultOf, useBaselineWasmCompilerOnly } from './pglite-databases.ts'

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
  #dataDir: string | undefined
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
    if (this.#dataDir !== undefined) await rm(this.#dataDir, { recursive: true, force: true })
  }

  #instance (): Promise<PGlite> {
    this.#db ??= (async () => {
      // The files on disk (a temporary directory, removed on close) rather than in this
      // process's memory, initialised by a process of its own (pglite-initdb.ts).
      const dataDir = this.#dataDir = await mkdtemp(join(tmpdir(), 'ficus-pglite-'))
      const initialised = await initdb(dataDir)
      try {
        return await PGlite.create({ dataDir, parsers: PARSERS, postgresqlconf: POSTGRES_CONF })
      } catch (error) {
        // A copy that does not open is not kept for the next start.
        await rm(initialised, { recursive: true, force: true })
        throw error
      }
    })()
    // A failed start is retried by the next request (in a new directory) rather than cached.
    this.#db.catch(async () => {
      this.#db = undefined
      if (this.#dataDir !== undefined) await rm(this.#dataDir, { recursive: true, force: true })
    })
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

/**
 * Fills `dataDir` with a freshly initialised database and returns where a copy of it is kept. The
 * same PGlite with the same settings always initialises the same files, so a copy is kept under
 * the system's temporary directory: only the first start pays for initdb (10-30 s in
 * WebAssembly), later ones copy it in well under a second.
 */
async function initdb (dataDir: string): Promise<string> {
  // pglite-initdb.ts next to this module, .js once built.
  const script = fileURLToPath(new URL(`./pglite-initdb${extname(fileURLToPath(import.meta.url))}`, import.meta.url))
  const pglitePackage = join(dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite'))), '..', 'package.json')
  const key = createHash('sha256').update(await readFile(pglitePackage)).update(await readFile(script)).update(JSON.stringify(POSTGRES_CONF)).digest('hex').slice(0, 16)
  const copy = join(tmpdir(), `ficus-pglite-initdb-${key}`)
  if (existsSync(join(copy, 'PG_VERSION'))) {
    await cp(copy, dataDir, { recursive: true })
    return copy
  }
  await promisify(execFile)(process.execPath, ['--max-semi-space-size=8', script, dataDir])
  // Copied aside and renamed: a start at the same time never copies half of it.
  const partial = `${copy}.${process.pid}.partial`
  await cp(dataDir, partial, { recursive: true }).then(() => rename(partial, copy)).catch(() => rm(partial, { recursive: true, force: true }))
  return copy
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
