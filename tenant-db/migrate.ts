// Applies SQL migrations to one database, then to many. Each database keeps a ledger table of
// what was applied (name + checksum), so a run is idempotent and resumes where the last one
// stopped; each migration runs in its own transaction with its ledger row, under an advisory
// lock, so two runners on the same database cannot both apply it.
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TenantDatabase } from './database.ts'
import { TenantDbErrors } from './errors.ts'

export const LEDGER_TABLE = 'ficus_migrations'
// Any constant will do, as long as every runner uses the same one.
const MIGRATION_LOCK_KEY = '7021446813250650227'
const MIGRATION_FILE = /^\d+[_-][A-Za-z0-9_-]+\.sql$/

export interface Migration {
  /** The file name, e.g. `001_attendance.sql`; migrations run in name order. */
  readonly name: string
  readonly sql: string
  /** sha256 of the file, hex: an applied migration whose file changes is reported. */
  readonly checksum: string
}

/** What the runner needs of a database: the handle of a school, or of the control database. */
export type MigrationTarget = Pick<TenantDatabase, 'query' | 'transaction'>

export type MigrationStatus = 'applied' | 'current' | 'pending' | 'failed'

export interface DatabaseMigrationResult {
  /** applied: this run applied some; current: nothing to do; pending: dry run found some to apply. */
  readonly status: MigrationStatus
  readonly applied: readonly string[]
  /** Not applied: what a dry run would apply, or what a failure left for the next run. */
  readonly pending: readonly string[]
  /** Applied migrations whose file no longer matches the ledger checksum. */
  readonly changed: readonly string[]
  readonly error?: { readonly migration?: string, readonly message: string }
}

export interface MigrateOptions {
  readonly dryRun?: boolean
}

export function checksumOf (sql: string): string {
  return createHash('sha256').update(sql).digest('hex')
}

/** Reads `NNN_name.sql` files of `dir` in name order; any other .sql file name is an error. */
export async function loadMigrations (dir: string): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort()
  const wrong = names.filter((name) => !MIGRATION_FILE.test(name))
  if (wrong.length > 0) throw new Error(`migration files must be named like 001_name.sql: ${wrong.join(', ')} in ${dir}`)
  return Promise.all(names.map(async (name) => {
    const sql = await readFile(join(dir, name), 'utf8')
    return Object.freeze({ name, sql, checksum: checksumOf(sql) })
  }))
}

const CREATE_LEDGER = `CREATE TABLE IF NOT EXISTS ${LEDGER_TABLE} (
  name text PRIMARY KEY,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

export async function migrateDatabase (target: MigrationTarget, migrations: readonly Migration[], options: MigrateOptions = {}): Promise<DatabaseMigrationResult> {
  const dryRun = options.dryRun ?? false
  if (!dryRun) {
    await target.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
      await tx.exec(CREATE_LEDGER)
    })
  }
  const ledger = await readLedger(target)
  const changed = migrations.filter((m) => ledger.has(m.name) && ledger.get(m.name) !== m.checksum).map((m) => m.name)
  const pending = migrations.filter((m) => !ledger.has(m.name))
  const pendingNames = pending.map((m) => m.name)
  if (changed.length > 0) {
    const error = TenantDbErrors.FICUS_ERR_MIGRATION_CHANGED(`${changed.join(', ')} no longer match${changed.length === 1 ? 'es' : ''} the checksum recorded when applied`)
    return { status: 'failed', applied: [], pending: pendingNames, changed, error: { message: error.message } }
  }
  if (dryRun) return { status: pending.length > 0 ? 'pending' : 'current', applied: [], pending: pendingNames, changed }

  const applied: string[] = []
  for (const migration of pending) {
    try {
      const didApply = await target.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
        const done = await tx.query(`SELECT 1 FROM ${LEDGER_TABLE} WHERE name = $1`, [migration.name])
        if (done.rows.length > 0) return false
        await tx.exec(migration.sql)
        await tx.query(`INSERT INTO ${LEDGER_TABLE} (name, checksum) VALUES ($1, $2)`, [migration.name, migration.checksum])
        return true
      })
      if (didApply) applied.push(migration.name)
    } catch (error) {
      return {
        status: 'failed',
        applied,
        pending: pendingNames.slice(pendingNames.indexOf(migration.name)),
        changed,
        error: { migration: migration.name, message: messageOf(error) }
      }
    }
  }
  return { status: applied.length > 0 ? 'applied' : 'current', applied, pending: [], changed }
}

async function readLedger (target: MigrationTarget): Promise<Map<string, string>> {
  const present = await target.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [LEDGER_TABLE])
  if (present.rows[0]?.present !== true) return new Map()
  const rows = await target.query<{ name: string, checksum: string }>(`SELECT name, checksum FROM ${LEDGER_TABLE}`)
  return new Map(rows.rows.map((row) => [row.name, row.checksum]))
}

export function messageOf (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  // A connection failure is more useful with its cause: "cannot be reached: school-a (ECONNREFUSED ...)".
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ''
  return error.message + cause
}

export interface MigrationJob {
  readonly id: string
  /** Opens the database; `close` is called when its migrations are done. */
  readonly open: () => Promise<MigrationTarget & { close (): Promise<void> }>
}

export interface SchoolMigrationResult extends DatabaseMigrationResult {
  readonly id: string
}

export interface MigrateAllOptions extends MigrateOptions {
  readonly concurrency: number
  /** Called once per database as it finishes, in completion order. */
  readonly onResult?: (result: SchoolMigrationResult, finished: number, total: number) => void
}

/**
 * Migrates every job's database, `concurrency` at a time. A database that fails (cannot be
 * reached, a migration errors) is reported and the others carry on. Results are in job order.
 */
export async function migrateAll (jobs: readonly MigrationJob[], migrations: readonly Migration[], options: MigrateAllOptions): Promise<SchoolMigrationResult[]> {
  const results = new Array<SchoolMigrationResult>(jobs.length)
  let next = 0
  let finished = 0
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const index = next++
      const job = jobs[index] as MigrationJob
      const result = { id: job.id, ...await migrateOne(job, migrations, options) }
      results[index] = result
      finished++
      options.onResult?.(result, finished, jobs.length)
    }
  }
  const workers = Math.max(1, Math.min(options.concurrency, jobs.length))
  await Promise.all(Array.from({ length: workers }, worker))
  return results
}

async function migrateOne (job: MigrationJob, migrations: readonly Migration[], options: MigrateOptions): Promise<DatabaseMigrationResult> {
  let target: (MigrationTarget & { close (): Promise<void> }) | undefined
  try {
    target = await job.open()
    return await migrateDatabase(target, migrations, options)
  } catch (error) {
    // Whatever was pending is still pending, but unknown without a ledger to read.
    return { status: 'failed', applied: [], pending: [], changed: [], error: { message: messageOf(error) } }
  } finally {
    await target?.close().catch(() => {})
  }
}
