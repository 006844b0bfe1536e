// Each school's own database: handles bound to one school, bounded pools (or embedded PGlite),
// migrations on every school, and audited writes. Public surface of the folder.
import { join } from 'node:path'
import type { TenantDbConfig } from './config.ts'
import type { TenantDatabase, TenantDatabases } from './database.ts'
import { loadMigrations } from './migrate.ts'
import type { PgTenantDatabasesOptions } from './pg-databases.ts'

export { parseTenantDbConfig, TENANT_DB_DEFAULTS, DEFAULT_MIGRATIONS_DIR } from './config.ts'
export type { TenantDbConfig } from './config.ts'
export type { QueryResult, Row, TenantDatabase, TenantDatabases, TenantDatabasesStats, TenantQueryable, TenantTransaction } from './database.ts'
export { TenantDbErrors } from './errors.ts'
// The two implementations (and `runMigrateCli`) are imported from their own modules: loading them
// here would load both drivers (pg, and PGlite's ~3 MB) into every process whatever DATABASE_URL says.
export type { PgTenantDatabases, PgTenantDatabasesOptions } from './pg-databases.ts'
export type { PgliteTenantDatabases, PgliteTenantDatabasesOptions } from './pglite-databases.ts'
export type { PgliteSchemaTenantDatabases, PgliteSchemaTenantDatabasesOptions } from './pglite-schemas.ts'
export { DatabaseTenantRegistry, withTenantDatabases, tenantDatabase } from './tenant-registry.ts'
export type { TenantWithDatabase } from './tenant-registry.ts'
export { auditedWrite, AUDIT_TABLE } from './audit.ts'
export type { AuditActor, AuditChange, AuditedTransaction } from './audit.ts'
export { loadMigrations, migrateDatabase, migrateAll, LEDGER_TABLE } from './migrate.ts'
export type { Migration, MigrationTarget, DatabaseMigrationResult, SchoolMigrationResult, MigrationJob } from './migrate.ts'

export interface CreateTenantDatabasesOptions {
  /** Errors of idle pooled connections, for the log. */
  readonly onError?: (error: unknown, tenantId: string) => void
  /** A write committed although its request was cancelled while COMMIT was on its way (PostgreSQL). */
  readonly onCommittedDespiteCancel?: PgTenantDatabasesOptions['onCommittedDespiteCancel']
  /** Embedded mode only: called once when a school's database is created (e.g. demo data). */
  readonly onCreate?: (db: TenantDatabase) => Promise<void>
}

/**
 * Pools on PostgreSQL when DATABASE_URL is set; else embedded PGlite: in memory one database with
 * a schema per school, with TENANT_PGLITE_DIR one database (directory) per school.
 */
export async function createTenantDatabases (config: TenantDbConfig, options: CreateTenantDatabasesOptions = {}): Promise<TenantDatabases> {
  // Only the configured driver is loaded.
  if (config.databaseUrl !== undefined) {
    const { PgTenantDatabases } = await import('./pg-databases.ts')
    return new PgTenantDatabases({
      poolsMax: config.poolsMax,
      poolSize: config.poolSize,
      statementTimeoutMs: config.statementTimeoutMs,
      connectTimeoutMs: config.connectTimeoutMs,
      poolIdleMs: config.poolIdleMs,
      onError: options.onError,
      onCommittedDespiteCancel: options.onCommittedDespiteCancel
    })
  }
  const migrations = await loadMigrations(join(config.migrationsDir, 'tenant'))
  if (config.pgliteDir === undefined) {
    // In memory: one embedded database, a schema and a role per school.
    const { PgliteSchemaTenantDatabases } = await import('./pglite-schemas.ts')
    return new PgliteSchemaTenantDatabases({ migrations, onCreate: options.onCreate })
  }
  const { PgliteTenantDatabases } = await import('./pglite-databases.ts')
  return new PgliteTenantDatabases({
    migrations,
    dataDir: config.pgliteDir,
    max: config.pgliteMax,
    acquireTimeoutMs: config.connectTimeoutMs,
    onCreate: options.onCreate
  })
}
