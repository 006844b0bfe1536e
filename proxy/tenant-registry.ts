// Which registry the edge reads schools from, and each school's database behind it: the
// `tenants` table of DATABASE_URL with pooled PostgreSQL, or the tenants file with one embedded
// PGlite database per school (the demo's default), seeded with demo data on first use.
import type { FastifyBaseLogger } from 'fastify'
import { createTenantDatabases, withTenantDatabases, type DatabaseTenantRegistry, type TenantDatabase } from '../tenant-db/index.ts'
import { FileTenantRegistry } from '../tenants/file-registry.ts'
import { PgTenantRegistry } from '../tenants/pg-registry.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Config } from './config.ts'
import { openFile } from './startup-error.ts'

export async function openTenantRegistry (config: Config, logger: FastifyBaseLogger): Promise<DatabaseTenantRegistry> {
  const { tenantDb } = config
  const registry: TenantRegistry = tenantDb.databaseUrl === undefined
    ? new FileTenantRegistry({
      path: config.tenantsFile,
      pollIntervalMs: config.flagsPollMs,
      onReload: (count) => logger.info({ tenants: count }, 'tenants file reloaded'),
      onInvalid: (error) => logger.error({ err: error.message }, 'tenants file rejected, keeping the last good list')
    })
    : new PgTenantRegistry({
      databaseUrl: tenantDb.databaseUrl,
      databaseUrlTemplate: tenantDb.databaseUrlTemplate,
      refreshMs: tenantDb.registryRefreshMs,
      connectTimeoutMs: tenantDb.connectTimeoutMs,
      onReload: (count) => logger.info({ tenants: count }, 'tenant registry reloaded'),
      onInvalid: (problem) => logger.error({ err: problem }, 'tenant rows rejected, keeping the last good list'),
      onError: (error) => logger.warn({ err: error.message }, 'tenant registry unreachable, keeping the last good list')
    })
  const databases = await createTenantDatabases(tenantDb, {
    onError: (error, tenantId) => logger.warn({ tenant: tenantId, err: (error as Error).message }, 'school database connection error'),
    onCommittedDespiteCancel: (tenantId, scope) => logger.warn({ reqId: scope.requestId, tenant: tenantId, cancelled: scope.reason },
      'write committed: its COMMIT was already sent when the request was cancelled'),
    onCreate: seedDemoSchool
  })
  if (tenantDb.databaseUrl === undefined) {
    logger.info('DATABASE_URL not set: tenants come from the tenants file, and each school gets an embedded PGlite database (in memory, demo data)')
  }
  const wrapped = withTenantDatabases(registry, databases)
  if (tenantDb.databaseUrl === undefined) await openFile('TENANTS_FILE', config.tenantsFile, 'tenants file', () => wrapped.start())
  else await wrapped.start()
  return wrapped
}

// The embedded demo only: a class with a few pupils, so the attendance register has something to show.
async function seedDemoSchool (db: TenantDatabase): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO school_marker (school_id) VALUES ($1)', [db.tenantId])
    await tx.query("INSERT INTO classes (id, name) VALUES ('3b', 'Class 3B')")
    await tx.query(`INSERT INTO pupils (id, class_id, given_name, family_name) VALUES
      ('p1', '3b', 'Ada', 'Lovelace'), ('p2', '3b', 'Alan', 'Turing'), ('p3', '3b', 'Grace', 'Hopper')`)
  })
}
