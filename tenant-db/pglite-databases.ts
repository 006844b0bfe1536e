// The embedded default: each school's database is a PGlite instance (PostgreSQL compiled to
// WebAssembly) inside this process, behind the same interface as the pools, migrated with the
// same SQL files when it opens. Each instance costs well over 100 MB, so at most `max` are open: in
// memory they cannot be closed without losing data, with a data directory the least recently
// used idle one is closed and reopened from disk when needed again.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { PGlite } from '@electric-sql/pglite'
import type { ParserOptions, Transaction } from '@electric-sql/pglite'
import { throwIfCancelled } from '../cancellation/request-scope.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { BoundedLru } from './bounded-lru.ts'
import type { LruEntry } from './bounded-lru.ts'
import type { QueryResult, Row, TenantDatabase, TenantDatabases, TenantDatabasesStats, TenantTransaction } from './database.ts'
import { TenantDbErrors } from './errors.ts'
import { migrateDatabase } from './migrate.ts'
import type { Migration } from './migrate.ts'

const DATE_OID = 1082
const INT8_OID = 20
/**
 * PostgreSQL's WebAssembly is large, and V8's optimising tier recompiles its hot functions into
 * well over 100 MB more per process; the baseline compiler alone runs a school's queries in
 * milliseconds. Applies to WebAssembly compiled in this process from then on: called only when
 * embedded databases are in use, before the first one starts (code the optimising tier has
 * produced by then would stay).
 * One compilation task, not one per worker thread: each thread's compiler leaves its malloc arena
 * grown by 20-30 MB that is never given back (under MALLOC_TRIM_THRESHOLD_=64 MiB), ~45 MB in
 * all for PostgreSQL's module, while compiling on one thread costs no measurable start-up time.
 */
export function useBaselineWasmCompilerOnly (): void {
  setFlagsFromString('--liftoff-only')
  setFlagsFromString('--wasm-num-compilation-tasks=1')
}
// Sized for a demo or a test, not for load: the defaults (128 MB of shared buffers, 16 MB WAL
// segments kept in the in-memory file system) cost more than the rest of ficus.
export const POSTGRES_CONF = ['shared_buffers=8MB', 'work_mem=1MB', 'temp_buffers=1MB', 'wal_buffers=64kB', 'maintenance_work_mem=2MB',
  'wal_level=minimal', 'max_wal_senders=0', 'min_wal_size=2MB', 'max_wal_size=8MB']
export const INITDB_PARAMS = ['--wal-segsize=1']
// Same shapes as the pg driver gives with PG_TYPES: a DATE as 'YYYY-MM-DD', an int8 as a string.
export const PARSERS: ParserOptions = { [DATE_OID]: (value: string) => value, [INT8_OID]: (value: string) => value }

export interface PgliteTenantDatabasesOptions {
  /** The tenant migrations, applied to each database when it opens. */
  readonly migrations: readonly Migration[]
  /** One sub-directory per school; undefined keeps every database in memory. */
  readonly dataDir?: string
  readonly max: number
  /** How long a caller waits for a free slot when `max` databases are open and busy. */
  readonly acquireTimeoutMs: number
  /** Called once, when a school's database is first created (e.g. to seed the demo). */
  readonly onCreate?: (db: TenantDatabase) => Promise<void>
}

interface Embedded {
  readonly ready: Promise<PGlite>
}

type Work<T> = (tx: TenantTransaction) => Promise<T>

export class PgliteTenantDatabases implements TenantDatabases {
  readonly kind = 'pglite'
  readonly #options: PgliteTenantDatabasesOptions
  readonly #lru: BoundedLru<Embedded>
  #template: Promise<Blob> | undefined

  constructor (options: PgliteTenantDatabasesOptions) {
    this.#options = options
    useBaselineWasmCompilerOnly()
    this.#lru = new BoundedLru<Embedded>({
      max: options.max,
      closeTimeoutMs: options.acquireTimeoutMs,
      evictable: () => options.dataDir !== undefined,
      open: (tenantId) => {
        const ready = this.#create(tenantId)
        // A failed open is seen by the query that waits for it; this only keeps it from being unhandled.
        ready.catch(() => {})
        return { ready }
      },
      close: async (embedded) => {
        const db = await embedded.ready.catch(() => undefined)
        await db?.close()
      }
    })
  }

  database (tenant: Tenant): TenantDatabase {
    const tenantId = tenant.id
    return new PgliteTenantDatabase(tenantId, (entryWork) => this.#run(tenantId, entryWork))
  }

  stats (): TenantDatabasesStats {
    return { open: this.#lru.open, closing: this.#lru.closing, busy: this.#lru.busy, waiting: this.#lru.waiting }
  }

  close (): Promise<void> {
    return this.#lru.close()
  }

  async #run<T> (tenantId: string, work: (db: PGlite) => Promise<T>): Promise<T> {
    const entry: LruEntry<Embedded> = await this.#lru.acquire(tenantId, '', this.#options.acquireTimeoutMs)
    try {
      let db: PGlite
      try {
        db = await entry.resource.ready
      } catch (error) {
        throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(tenantId, { cause: error })
      }
      return await work(db)
    } finally {
      this.#lru.release(entry)
    }
  }

  async #create (tenantId: string): Promise<PGlite> {
    const dir = this.#options.dataDir === undefined ? undefined : join(this.#options.dataDir, tenantId)
    const existed = dir !== undefined && existsSync(join(dir, 'PG_VERSION'))
    let db: PGlite
    if (existed) {
      db = await PGlite.create({ dataDir: dir, parsers: PARSERS, postgresqlconf: POSTGRES_CONF })
    } else {
      if (this.#options.dataDir !== undefined) await mkdir(this.#options.dataDir, { recursive: true })
      db = await PGlite.create({ dataDir: dir, loadDataDir: await this.#templateDump(), parsers: PARSERS, postgresqlconf: POSTGRES_CONF })
    }
    const handle = new PgliteTenantDatabase(tenantId, (work) => work(db))
    // A database reopened from disk may predate the newest migrations; a fresh copy is already current.
    const result = await migrateDatabase(handle, this.#options.migrations)
    if (result.status === 'failed') {
      await db.close()
      throw TenantDbErrors.FICUS_ERR_MIGRATION_FAILED(`${tenantId}: ${result.error?.migration ?? ''} ${result.error?.message ?? ''}`)
    }
    if (!existed) await this.#options.onCreate?.(handle)
    return db
  }

  // initdb takes seconds; copying a migrated, empty database takes a fraction of that.
  #templateDump (): Promise<Blob> {
    this.#template ??= (async () => {
      const template = await PGlite.create({ parsers: PARSERS, postgresqlconf: POSTGRES_CONF, initDbStartParams: INITDB_PARAMS })
      try {
        const result = await migrateDatabase(new PgliteTenantDatabase('template', (work) => work(template)), this.#options.migrations)
        if (result.status === 'failed') throw TenantDbErrors.FICUS_ERR_MIGRATION_FAILED(`${result.error?.migration ?? ''} ${result.error?.message ?? ''}`)
        return await template.dumpDataDir('none') as Blob
      } finally {
        await template.close()
      }
    })()
    // A failed template is retried by the next school rather than cached.
    this.#template.catch(() => { this.#template = undefined })
    return this.#template
  }
}

class PgliteTenantDatabase implements TenantDatabase {
  readonly tenantId: string
  readonly #use: <T>(work: (db: PGlite) => Promise<T>) => Promise<T>

  constructor (tenantId: string, use: <T>(work: (db: PGlite) => Promise<T>) => Promise<T>) {
    this.tenantId = tenantId
    this.#use = use
  }

  query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#use(async (db) => resultOf(await db.query<R>(text, values as unknown[] | undefined)))
  }

  transaction<T> (work: Work<T>): Promise<T> {
    // A request cancelled while `work` ran is rolled back, never committed.
    return this.#use((db) => db.transaction(async (tx) => {
      const result = await work(new PgliteTransaction(tx, this.tenantId))
      throwIfCancelled()
      return result
    }))
  }
}

export class PgliteTransaction implements TenantTransaction {
  readonly #tx: Transaction
  readonly #tenantId: string

  constructor (tx: Transaction, tenantId: string) {
    this.#tx = tx
    this.#tenantId = tenantId
  }

  async query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    if (this.#tx.closed) throw TenantDbErrors.FICUS_ERR_TENANT_DB_TX_FINISHED(this.#tenantId)
    throwIfCancelled()
    return resultOf(await this.#tx.query<R>(text, values as unknown[] | undefined))
  }

  async exec (script: string): Promise<void> {
    if (this.#tx.closed) throw TenantDbErrors.FICUS_ERR_TENANT_DB_TX_FINISHED(this.#tenantId)
    throwIfCancelled()
    await this.#tx.exec(script)
  }
}

export function resultOf<R> (result: { rows: R[], rowCount?: number, affectedRows?: number }): QueryResult<R> {
  return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? result.rows.length }
}
