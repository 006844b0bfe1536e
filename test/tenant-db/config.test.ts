import t from 'tap'
import { DEFAULT_MIGRATIONS_DIR, parseTenantDbConfig, TENANT_DB_DEFAULTS } from '../../tenant-db/config.ts'
import { redactUrl } from '../../tenants/database-url.ts'

t.test('defaults: embedded databases, named default bounds', async (t) => {
  const problems: string[] = []
  const config = parseTenantDbConfig({}, problems)
  t.same(problems, [])
  t.equal(config.databaseUrl, undefined)
  t.match(config, {
    poolsMax: TENANT_DB_DEFAULTS.TENANT_POOLS_MAX,
    poolSize: TENANT_DB_DEFAULTS.TENANT_POOL_SIZE,
    statementTimeoutMs: TENANT_DB_DEFAULTS.TENANT_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: TENANT_DB_DEFAULTS.TENANT_CONNECT_TIMEOUT_MS,
    pgliteDir: undefined,
    migrationsDir: DEFAULT_MIGRATIONS_DIR
  })
  t.ok(Object.isFrozen(config))
})

t.test('values are read, and connection strings kept out of serialised config', async (t) => {
  const problems: string[] = []
  const config = parseTenantDbConfig({
    DATABASE_URL: 'postgres://ficus:secret@db:5432/control',
    TENANT_DATABASE_URL_TEMPLATE: 'postgres://ficus:secret@db:5432/{database}',
    TENANT_POOLS_MAX: '20',
    TENANT_POOL_SIZE: '0',
    TENANT_STATEMENT_TIMEOUT_MS: 'soon',
    TENANT_PGLITE_DIR: '/var/lib/ficus'
  }, problems)
  t.equal(config.databaseUrl, 'postgres://ficus:secret@db:5432/control')
  t.equal(config.databaseUrlTemplate, 'postgres://ficus:secret@db:5432/{database}')
  t.equal(config.poolsMax, 20)
  t.equal(config.pgliteDir, '/var/lib/ficus')
  t.notMatch(JSON.stringify(config), /secret/)
  t.same(problems, [
    'TENANT_POOL_SIZE must be an integer of at least 1, e.g. TENANT_POOL_SIZE=2',
    'TENANT_STATEMENT_TIMEOUT_MS must be an integer of at least 1, e.g. TENANT_STATEMENT_TIMEOUT_MS=5000'
  ])
})

t.test('every bad variable is reported at once, with an example', async (t) => {
  const problems: string[] = []
  parseTenantDbConfig({ DATABASE_URL: 'mysql://x', TENANT_DATABASE_URL_TEMPLATE: 'postgres://db/fixed', TENANT_POOLS_MAX: '-1' }, problems)
  t.equal(problems.length, 3)
  t.match(problems[0], /^DATABASE_URL must be a postgres:\/\/ URL .*e\.g\. DATABASE_URL=postgres:/)
  t.match(problems[1], /^TENANT_DATABASE_URL_TEMPLATE must be a postgres:\/\/ URL containing \{database\}/)
  t.match(problems[2], /^TENANT_POOLS_MAX must be an integer/)
})

t.test('redactUrl hides the password', async (t) => {
  t.equal(redactUrl('postgres://ficus:secret@db:5432/x'), 'postgres://ficus:***@db:5432/x')
  t.equal(redactUrl('postgres://ficus@db/x'), 'postgres://ficus@db/x')
})
