// The embedded default in memory: one PGlite database, a schema and a role per school. Each
// school's handle sees its own tables only, serves the routes like a database of its own, and
// cannot read, write or create anything of another school's, even by naming it.
import t from 'tap'
import { attendanceRegisterRoutes } from '../../new-routes/attendance-register/index.ts'
import type { TenantDatabase } from '../../tenant-db/database.ts'
import { loadMigrations } from '../../tenant-db/migrate.ts'
import { PgliteSchemaTenantDatabases, schemaOf } from '../../tenant-db/pglite-schemas.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import type { Tenant } from '../../tenants/tenant.ts'
import { ListRegistry, SCHOOL_HEADER, startRouteApp, TENANT_MIGRATIONS_DIR } from '../helpers/tenant-databases.ts'

t.setTimeout(120_000)

const migrations = await loadMigrations(TENANT_MIGRATIONS_DIR)
const tenant = (id: string): Tenant => ({ id, name: `School ${id}`, status: 'active', cohorts: [] })
const seed = async (db: TenantDatabase): Promise<void> => {
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO school_marker (school_id) VALUES ($1)', [db.tenantId])
    await tx.query("INSERT INTO classes (id, name) VALUES ('7B', $1)", [`7B of ${db.tenantId}`])
    await tx.query("INSERT INTO pupils (id, class_id, given_name, family_name) VALUES ('p1', '7B', 'Ada', 'Lovelace')")
  })
}

const created: string[] = []
const databases = new PgliteSchemaTenantDatabases({ migrations, onCreate: async (db) => { created.push(db.tenantId); await seed(db) } })
const registry = withTenantDatabases(new ListRegistry([tenant('school-a'), tenant('school-b')]), databases)
t.teardown(() => registry.close())
const a = registry.get('school-a')?.db as TenantDatabase
const b = registry.get('school-b')?.db as TenantDatabase

t.test('each school is migrated and seeded once, in its own schema, and serves the routes', async (t) => {
  const app = await startRouteApp(t, registry, attendanceRegisterRoutes)
  const headers = (id: string) => ({ [SCHOOL_HEADER]: id, accept: 'application/json', 'x-request-id': `req-${id}` })
  const posted = await app.inject({ method: 'POST', url: '/attendance/7B', headers: headers('school-a'), payload: { date: '2024-05-06', marks: [{ pupilId: 'p1', status: 'late' }] } })
  t.equal(posted.statusCode, 200, posted.body)
  t.match(posted.json(), { className: '7B of school-a', changed: 1, pupils: [{ pupilId: 'p1', status: 'late' }] })
  const read = await app.inject({ method: 'GET', url: '/attendance/7B?date=2024-05-06', headers: headers('school-b') })
  t.equal(read.statusCode, 200, read.body)
  t.match(read.json(), { className: '7B of school-b', pupils: [{ pupilId: 'p1', status: null }] }, 'school-b sees none of school-a\'s marks')
  t.same((await a.query('SELECT school_id, request_id FROM audit_log')).rows, [{ school_id: 'school-a', request_id: 'req-school-a' }])
  t.same((await b.query('SELECT * FROM audit_log')).rows, [], 'no audit row in the other school')
  t.same((await a.query('SELECT school_id FROM school_marker')).rows, [{ school_id: 'school-a' }])
  t.same((await b.query('SELECT school_id FROM school_marker')).rows, [{ school_id: 'school-b' }])
  t.same(created.sort(), ['school-a', 'school-b'], 'onCreate ran once per school')
  t.same(databases.stats(), { open: 1, closing: 0, busy: 0, waiting: 0 }, 'one embedded database for every school')
})

t.test('a school cannot read, change or create anything in another school\'s schema, even naming it', async (t) => {
  const other = `"${schemaOf('school-b')}"`
  await t.rejects(a.query(`SELECT * FROM ${other}.pupils`), /permission denied for schema/, 'read refused')
  await t.rejects(a.query(`UPDATE ${other}.classes SET name = 'taken'`), /permission denied for schema/, 'write refused')
  await t.rejects(a.query(`CREATE TABLE ${other}.planted (x int)`), /permission denied for schema/, 'create refused')
  await t.rejects(a.query('CREATE TABLE public.planted (x int)'), /permission denied for schema public/, 'nor in the shared public schema')
  await t.rejects(a.transaction(async (tx) => tx.query(`DELETE FROM ${other}.audit_log`)), /permission denied for schema/, 'inside a transaction too')
  t.same((await b.query('SELECT name FROM classes')).rows, [{ name: '7B of school-b' }], 'school-b\'s data is intact')
  await a.query('CREATE TABLE scratch (x int)')
  await t.rejects(b.query('SELECT * FROM scratch'), /relation "scratch" does not exist/, 'an unqualified name is always the school\'s own')
})
