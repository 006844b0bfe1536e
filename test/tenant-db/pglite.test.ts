// The embedded default: PGlite databases in-process, one per school, behind the same interface,
// migrated by the same SQL files as the PostgreSQL ones and serving the same routes.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { attendanceRegisterRoutes } from '../../new-routes/attendance-register/index.ts'
import type { TenantDatabase } from '../../tenant-db/database.ts'
import { loadMigrations, migrateDatabase } from '../../tenant-db/migrate.ts'
import { PgliteTenantDatabases } from '../../tenant-db/pglite-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import type { Tenant } from '../../tenants/tenant.ts'
import { createSchoolDatabases, ListRegistry, SCHOOL_HEADER, startRouteApp, TENANT_MIGRATIONS_DIR, withAdmin, testDatabasePrefix } from '../helpers/tenant-databases.ts'

t.setTimeout(120_000)

const PREFIX = testDatabasePrefix('ficus_t_pglite')
const migrations = await loadMigrations(TENANT_MIGRATIONS_DIR)
const tenant = (id: string): Tenant => ({ id, name: `School ${id}`, status: 'active', cohorts: [] })
const seed = async (db: TenantDatabase) => {
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO school_marker (school_id) VALUES ($1)', [db.tenantId])
    await tx.query("INSERT INTO classes (id, name) VALUES ('7B', $1)", [`7B of ${db.tenantId}`])
    await tx.query("INSERT INTO pupils (id, class_id, given_name, family_name) VALUES ('p1', '7B', 'Ada', 'Lovelace')")
  })
}
const SCHEMA = `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
  WHERE table_schema = 'public' ORDER BY table_name, column_name`

t.test('the tenant migrations run on PGlite and give the schema they give on PostgreSQL', async (t) => {
  const [school] = await createSchoolDatabases(t, PREFIX, 1)
  const onPostgres = await withAdmin(async (client) => (await client.query(SCHEMA)).rows, school?.url)
  const pglite = await PGlite.create()
  t.teardown(() => pglite.close())
  const target: Pick<TenantDatabase, 'query' | 'transaction'> = {
    query: async (text, values) => { const r = await pglite.query(text, values as unknown[]); return { rows: r.rows as never[], rowCount: r.rows.length } },
    transaction: (work) => pglite.transaction((tx) => work({
      query: async (text, values) => { const r = await tx.query(text, values as unknown[]); return { rows: r.rows as never[], rowCount: r.rows.length } },
      exec: async (script) => { await tx.exec(script) }
    }))
  }
  const first = await migrateDatabase(target, migrations)
  t.same(first.applied, migrations.map((m) => m.name))
  t.equal((await migrateDatabase(target, migrations)).status, 'current', 'a second run changes nothing')
  t.same((await pglite.query(SCHEMA)).rows, onPostgres)
})

t.test('each school gets its own embedded database, created once, migrated and seeded, serving the routes', async (t) => {
  const created: string[] = []
  const databases = new PgliteTenantDatabases({ migrations, max: 2, acquireTimeoutMs: 1_000, onCreate: async (db) => { created.push(db.tenantId); await seed(db) } })
  const registry = withTenantDatabases(new ListRegistry([tenant('school-a'), tenant('school-b')]), databases)
  t.teardown(() => registry.close())
  const app = await startRouteApp(t, registry, attendanceRegisterRoutes)
  const headers = (id: string) => ({ [SCHOOL_HEADER]: id, accept: 'application/json', 'x-request-id': `req-${id}` })

  const posted = await app.inject({ method: 'POST', url: '/attendance/7B', headers: headers('school-a'), payload: { date: '2024-05-06', marks: [{ pupilId: 'p1', status: 'late' }] } })
  t.equal(posted.statusCode, 200, posted.body)
  t.match(posted.json(), { className: '7B of school-a', changed: 1, pupils: [{ pupilId: 'p1', status: 'late' }] })
  const read = await app.inject({ method: 'GET', url: '/attendance/7B?date=2024-05-06', headers: headers('school-b') })
  t.equal(read.statusCode, 200, read.body)
  t.match(read.json(), { className: '7B of school-b', date: '2024-05-06', pupils: [{ pupilId: 'p1', status: null }] })

  const audit = await registry.get('school-a')?.db?.query<{ school_id: string, request_id: string }>('SELECT school_id, request_id FROM audit_log')
  t.same(audit?.rows, [{ school_id: 'school-a', request_id: 'req-school-a' }])
  t.same((await registry.get('school-b')?.db?.query('SELECT * FROM audit_log'))?.rows, [], 'no audit row in the other school')
  t.same(created.sort(), ['school-a', 'school-b'], 'onCreate ran once per school')
  t.same(databases.stats(), { open: 2, closing: 0, busy: 0, waiting: 0 })
})

t.test('in memory, schools beyond the cap are refused with a busy error rather than losing another school\'s data', async (t) => {
  const databases = new PgliteTenantDatabases({ migrations, max: 1, acquireTimeoutMs: 200 })
  t.teardown(() => databases.close())
  await databases.database(tenant('school-a')).query('SELECT 1')
  await t.rejects(databases.database(tenant('school-b')).query('SELECT 1'), { code: 'FICUS_ERR_TENANT_DB_BUSY', statusCode: 503 })
  t.equal(databases.stats().open, 1)
})

t.test('with a data directory, the least recently used school is closed to make room and reopened with its data', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ficus-pglite-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const databases = new PgliteTenantDatabases({ migrations, dataDir: dir, max: 1, acquireTimeoutMs: 10_000, onCreate: seed })
  t.teardown(() => databases.close())
  const a = databases.database(tenant('school-a'))
  const b = databases.database(tenant('school-b'))
  await a.query("INSERT INTO attendance_marks (pupil_id, day, class_id, status) VALUES ('p1', '2024-05-06', '7B', 'absent')")
  t.same((await b.query('SELECT school_id FROM school_marker')).rows, [{ school_id: 'school-b' }])
  t.same((await a.query('SELECT status, day FROM attendance_marks')).rows, [{ status: 'absent', day: '2024-05-06' }], 'school-a reopened from disk, dates as text as on PostgreSQL')
  t.same((await a.query('SELECT school_id FROM school_marker')).rows, [{ school_id: 'school-a' }], 'seeded once, not again on reopen')
  t.equal(databases.stats().open, 1)
})
