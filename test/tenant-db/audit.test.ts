// Every write of a migrated handler leaves an audit row (who, which school, what, when, which
// request) in the same transaction, in the school's own database and in no other.
import t from 'tap'
import { createAttendanceRegisterRoutes } from '../../new-routes/attendance-register/index.ts'
import { auditedWrite } from '../../tenant-db/audit.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { createSchoolDatabases, ListRegistry, SCHOOL_HEADER, startRouteApp, tenantsOf, withAdmin, testDatabasePrefix, USER_HEADER } from '../helpers/tenant-databases.ts'
import type { SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(60_000)

const PREFIX = testDatabasePrefix('ficus_t_audit')
const schools = await createSchoolDatabases(t, PREFIX, 3)
const [writer, ...bystanders] = schools as [SchoolDatabase, ...SchoolDatabase[]]

const registry = withTenantDatabases(new ListRegistry(tenantsOf(schools)), new PgTenantDatabases({ poolsMax: 5, poolSize: 2, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, poolIdleMs: 30_000 }))
t.teardown(() => registry.close())
const routes = createAttendanceRegisterRoutes()
const app = await startRouteApp(t, registry, routes)

interface AuditRow {
  school_id: string
  user_id: string | null
  request_id: string
  action: string
  table_name: string
  row_key: unknown
  before: Record<string, unknown> | null
  after: Record<string, unknown> | null
  at: Date
}

const auditOf = (school: SchoolDatabase, requestId?: string) => withAdmin(async (client) => (await client.query<AuditRow>(
  `SELECT school_id, user_id, request_id, action, table_name, row_key, before, after, at FROM audit_log
   WHERE $1::text IS NULL OR request_id = $1 ORDER BY id`, [requestId ?? null])).rows, school.url)

const mark = (requestId: string, payload: object, user?: string) => app.inject({
  method: 'POST',
  url: '/attendance/7B',
  headers: { [SCHOOL_HEADER]: writer.id, 'x-request-id': requestId, accept: 'application/json', [USER_HEADER]: user ?? '' },
  payload
})

t.test('a first mark and its change are audited with user, school, request, key, before and after', async (t) => {
  const started = new Date()
  t.equal((await mark('req-create', { date: '2024-04-01', marks: [{ pupilId: 'p1', status: 'absent' }] }, 'teacher-7')).statusCode, 200)
  t.equal((await mark('req-update', { date: '2024-04-01', marks: [{ pupilId: 'p1', status: 'late', note: 'doctor' }] }, 'teacher-8')).statusCode, 200)

  const [created] = await auditOf(writer, 'req-create')
  t.match(created, {
    school_id: writer.id,
    user_id: 'teacher-7',
    request_id: 'req-create',
    action: 'insert',
    table_name: 'attendance_marks',
    row_key: { pupilId: 'p1', day: '2024-04-01' },
    before: null,
    after: { pupil_id: 'p1', class_id: '7B', status: 'absent', note: null, marked_by: 'teacher-7' }
  })
  t.ok(created !== undefined && created.at.getTime() >= started.getTime() - 60_000, 'stamped with the time of the write')
  const updates = await auditOf(writer, 'req-update')
  t.equal(updates.length, 1)
  t.match(updates[0], {
    user_id: 'teacher-8',
    action: 'update',
    before: { status: 'absent', note: null, marked_by: 'teacher-7' },
    after: { status: 'late', note: 'doctor', marked_by: 'teacher-8' }
  })
})

t.test('a write without a signed-in user is refused, neither written nor audited', async (t) => {
  const refused = await mark('req-anonymous', { date: '2024-04-02', marks: [{ pupilId: 'p2', status: 'present' }] })
  t.equal(refused.statusCode, 401)
  t.equal(refused.json().error.code, 'FICUS_ERR_NOT_SIGNED_IN')
  t.same(await auditOf(writer, 'req-anonymous'), [])
  const written = await withAdmin(async (client) => (await client.query("SELECT 1 FROM attendance_marks WHERE day = '2024-04-02' AND pupil_id = 'p2'")).rows, writer.url)
  t.same(written, [])
})

t.test('a write that changes nothing and a refused write leave no audit row', async (t) => {
  t.equal((await mark('req-first', { date: '2024-04-02', marks: [{ pupilId: 'p2', status: 'present' }] }, 'teacher-7')).statusCode, 200)
  t.equal((await mark('req-same', { date: '2024-04-02', marks: [{ pupilId: 'p2', status: 'present' }] }, 'teacher-7')).statusCode, 200)
  t.equal((await mark('req-refused', { date: '2024-04-02', marks: [{ pupilId: 'p3', status: 'present' }, { pupilId: 'nobody', status: 'late' }] }, 'teacher-7')).statusCode, 422)
  t.same(await auditOf(writer, 'req-same'), [])
  t.same(await auditOf(writer, 'req-refused'), [])
})

t.test('the audit rows stay in the writing school\'s database: none in any other', async (t) => {
  t.ok((await auditOf(writer)).length >= 3)
  for (const school of bystanders) t.same(await auditOf(school), [], `${school.id} has no audit row`)
})

t.test('a transaction that fails after recording takes its audit rows with it', async (t) => {
  const db = registry.get(writer.id)?.db
  if (db === undefined) throw new Error('no db on the tenant')
  await t.rejects(auditedWrite(db, { userId: 'teacher-7', requestId: 'req-rolled-back' }, async (tx) => {
    await tx.query("UPDATE attendance_marks SET note = 'x' WHERE pupil_id = 'p2'")
    await tx.record([{ table: 'attendance_marks', key: { pupilId: 'p2' }, before: {}, after: { note: 'x' } }])
    throw new Error('handler failed after writing')
  }), /handler failed/)
  t.same(await auditOf(writer, 'req-rolled-back'), [])
  t.same(await withAdmin(async (c) => (await c.query("SELECT count(*)::int AS n FROM attendance_marks WHERE note = 'x'")).rows, writer.url), [{ n: 0 }])
})
