// The migrated attendance register on real school databases: read a class's day, mark pupils,
// idempotently, with bad input refused (422, naming the field) and nothing written.
import t from 'tap'
import type { Test } from 'tap'
import { attendanceRegisterRoutes, ATTENDANCE_REGISTER_FLAG } from '../../new-routes/attendance-register/index.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { classNameOf, createSchoolDatabases, ListRegistry, SCHOOL_HEADER, startRouteApp, tenantsOf, withAdmin, testDatabasePrefix } from '../helpers/tenant-databases.ts'
import type { SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(60_000)

const PREFIX = testDatabasePrefix('ficus_t_register')
const schools = await createSchoolDatabases(t, PREFIX, 3)
const [school] = schools as [SchoolDatabase]
let day = 0
// Each test marks its own day, so tests do not depend on each other's marks.
const nextDay = () => `2024-03-${String(++day).padStart(2, '0')}`

async function setup (t: Test) {
  const registry = withTenantDatabases(new ListRegistry(tenantsOf(schools)), new PgTenantDatabases({ poolsMax: 5, poolSize: 2, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, poolIdleMs: 30_000 }))
  t.teardown(() => registry.close())
  const app = await startRouteApp(t, registry, attendanceRegisterRoutes)
  const headers = { [SCHOOL_HEADER]: school.id, accept: 'application/json' }
  return {
    get: async (url: string) => {
      const response = await app.inject({ method: 'GET', url, headers })
      return { status: response.statusCode, body: response.json() as Record<string, unknown> & { error?: { code: string, message: string } } }
    },
    post: async (url: string, payload: unknown) => {
      const response = await app.inject({ method: 'POST', url, headers, payload: payload as object })
      return { status: response.statusCode, body: response.json() as Record<string, unknown> & { error?: { code: string, message: string } } }
    }
  }
}

const marksOn = (date: string) => withAdmin(async (client) =>
  (await client.query<{ pupil_id: string, status: string }>('SELECT pupil_id, status FROM attendance_marks WHERE day = $1 ORDER BY pupil_id', [date])).rows, school.url)

t.test('the routes are declared for the edge under the attendance-register flag', async (t) => {
  t.same(attendanceRegisterRoutes.map((route) => [route.method, route.url, route.flag]), [
    ['GET', '/attendance/:classId', ATTENDANCE_REGISTER_FLAG],
    ['POST', '/attendance/:classId', ATTENDANCE_REGISTER_FLAG]
  ])
  t.equal(ATTENDANCE_REGISTER_FLAG, 'attendance-register')
})

t.test('GET gives the class register of the day, unmarked pupils included', async (t) => {
  const { get } = await setup(t)
  const date = nextDay()
  const { status, body } = await get(`/attendance/7B?date=${date}`)
  t.equal(status, 200)
  t.same(body, {
    classId: '7B',
    className: classNameOf(school.id),
    date,
    pupils: [
      { pupilId: 'p1', name: 'Pupil1 Test', status: null, note: null, markedBy: null, markedAt: null },
      { pupilId: 'p2', name: 'Pupil2 Test', status: null, note: null, markedBy: null, markedAt: null },
      { pupilId: 'p3', name: 'Pupil3 Test', status: null, note: null, markedBy: null, markedAt: null }
    ]
  })
})

t.test('GET of an unknown class is a 404', async (t) => {
  const { get } = await setup(t)
  const { status, body } = await get(`/attendance/9Z?date=${nextDay()}`)
  t.equal(status, 404)
  t.equal(body.error?.code, 'FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN')
})

t.test('GET without a valid date is a 422 naming the field', async (t) => {
  const { get } = await setup(t)
  for (const url of ['/attendance/7B', '/attendance/7B?date=2024-02-30', '/attendance/7B?date=yesterday']) {
    const { status, body } = await get(url)
    t.equal(status, 422, url)
    t.equal(body.error?.code, 'FICUS_ERR_VALIDATION')
    t.match(body.error?.message, /querystring\/?date|querystring must have required property 'date'/, url)
  }
})

t.test('POST marks pupils and answers the updated register', async (t) => {
  const { post } = await setup(t)
  const date = nextDay()
  const { status, body } = await post('/attendance/7B', { date, marks: [{ pupilId: 'p1', status: 'present' }, { pupilId: 'p2', status: 'late', note: 'bus' }] })
  t.equal(status, 200)
  t.equal(body.changed, 2)
  const pupils = body.pupils as Array<{ pupilId: string, status: string | null, note: string | null, markedAt: string | null }>
  t.same(pupils.map((pupil) => [pupil.pupilId, pupil.status, pupil.note]), [['p1', 'present', null], ['p2', 'late', 'bus'], ['p3', null, null]])
  t.ok(pupils[0]?.markedAt !== null && !Number.isNaN(Date.parse(pupils[0]?.markedAt ?? '')))
  t.same(await marksOn(date), [{ pupil_id: 'p1', status: 'present' }, { pupil_id: 'p2', status: 'late' }])
})

t.test('POST is idempotent per pupil and day: the same marks again change nothing, a new status replaces the old', async (t) => {
  const { post } = await setup(t)
  const date = nextDay()
  const marks = { date, marks: [{ pupilId: 'p1', status: 'absent' }] }
  t.equal((await post('/attendance/7B', marks)).body.changed, 1)
  t.equal((await post('/attendance/7B', marks)).body.changed, 0)
  const concurrent = await Promise.all(Array.from({ length: 8 }, () => post('/attendance/7B', { date, marks: [{ pupilId: 'p1', status: 'late' }] })))
  t.same(concurrent.map((answer) => answer.status), concurrent.map(() => 200))
  t.equal(concurrent.reduce((sum, answer) => sum + (answer.body.changed as number), 0), 1, 'of 8 identical concurrent posts, one changes the mark')
  t.same(await marksOn(date), [{ pupil_id: 'p1', status: 'late' }], 'one row per pupil and day')
})

t.test('POST with bad input is a 422 naming the field, and writes nothing', async (t) => {
  const { post } = await setup(t)
  const date = nextDay()
  const cases: Array<[unknown, RegExp, string]> = [
    [{ date, marks: [{ pupilId: 'p1', status: 'sleeping' }] }, /body\/marks\/0\/status/, 'FICUS_ERR_VALIDATION'],
    [{ date, marks: [{ status: 'present' }] }, /body\/marks\/0 must have required property 'pupilId'/, 'FICUS_ERR_VALIDATION'],
    [{ date: '2024-13-01', marks: [{ pupilId: 'p1', status: 'present' }] }, /body\/date/, 'FICUS_ERR_VALIDATION'],
    [{ date, marks: [] }, /body\/marks/, 'FICUS_ERR_VALIDATION'],
    [{ marks: [{ pupilId: 'p1', status: 'present' }] }, /body must have required property 'date'/, 'FICUS_ERR_VALIDATION'],
    [{ date, marks: [{ pupilId: 'p1', status: 'present' }, { pupilId: 'p1', status: 'late' }] }, /body\/marks\/1\/pupilId p1 is marked twice/, 'FICUS_ERR_ATTENDANCE_INVALID'],
    [{ date, marks: [{ pupilId: 'p2', status: 'present' }, { pupilId: 'p9', status: 'late' }] }, /body\/marks\/1\/pupilId p9 is not a pupil of class 7B/, 'FICUS_ERR_ATTENDANCE_INVALID']
  ]
  for (const [payload, field, code] of cases) {
    const { status, body } = await post('/attendance/7B', payload)
    t.equal(status, 422, JSON.stringify(payload))
    t.equal(body.error?.code, code)
    t.match(body.error?.message, field)
  }
  t.same(await marksOn(date), [], 'nothing written')
})

t.test('POST to an unknown class is a 404 and writes nothing', async (t) => {
  const { post } = await setup(t)
  const date = nextDay()
  const { status, body } = await post('/attendance/9Z', { date, marks: [{ pupilId: 'p1', status: 'present' }] })
  t.equal(status, 404)
  t.equal(body.error?.code, 'FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN')
  t.same(await marksOn(date), [])
})
