// Which schools a flag set in a real Unleash server moves, seen through a real ficus process:
// one school by tenantId, a cohort, a kill switch over route flags, and /decisions explaining it.
import t from 'tap'
import { migratedRoutes } from '../../new-routes/index.ts'
import {
  configureFlag,
  declareContextFields,
  declaredRoute,
  startFicus,
  type School
} from '../helpers/ficus-process.ts'
import { signedInSessions } from '../helpers/signed-in.ts'
import { constraintIn, defaultStrategy, flexibleRollout, startUnleash } from '../helpers/unleash.ts'

const attendance = declaredRoute('attendance.page')
const timetable = declaredRoute('timetable.page')
const KILL_SWITCH = 'ficus-kill-switch'
const FLIP_WAIT_MS = 10_000

// Several schools in several cohorts; `pilot-2` guards against partial matches of `pilot`.
const SCHOOLS: readonly School[] = [
  { id: 'school-a', cohorts: ['pilot'] },
  { id: 'school-b', cohorts: [] },
  { id: 'school-c', cohorts: ['wave-1', 'pilot'] },
  { id: 'school-d', cohorts: ['wave-1'] },
  { id: 'school-e', cohorts: ['la-north', 'wave-2', 'pilot'] },
  { id: 'school-f', cohorts: ['pilot-2'] },
  { id: 'school-g', cohorts: ['la-north'] }
]
const PILOT_SCHOOLS = ['school-a', 'school-c', 'school-e']

const unleash = await startUnleash(t)
t.comment(`unleash-server started in ${unleash.lastStartMs} ms`)
await declareContextFields(unleash)

async function sides (ficus: Awaited<ReturnType<typeof startFicus>>, path: string): Promise<Record<string, string | undefined>> {
  const answers: Record<string, string | undefined> = {}
  for (const school of SCHOOLS) answers[school.id] = (await ficus.get(school.id, path)).servedBy
  return answers
}

function expected (newSchools: readonly string[]): Record<string, string> {
  return Object.fromEntries(SCHOOLS.map((school) => [school.id, newSchools.includes(school.id) ? 'new' : 'legacy']))
}

t.test('a constraint tenantId IN [school-a] moves school-a only', async (t) => {
  await configureFlag(unleash, attendance.flag, { enabled: true, strategies: [defaultStrategy([constraintIn('tenantId', ['school-a'])])] })
  await configureFlag(unleash, timetable.flag, { enabled: false, strategies: [] })
  // The attendance page is for teachers: one is signed in on school-a.
  const teachers = await signedInSessions(t, ['school-a'])
  const ficus = await startFicus(t, { unleash, schools: SCHOOLS, env: teachers.env })

  t.same(await sides(ficus, attendance.url), expected(['school-a']), 'school-a is served by new, every other school by legacy')
  const moved = await ficus.get('school-a', attendance.url, { cookie: teachers.cookie('school-a') })
  t.equal(moved.status, 200)
  t.match(moved.body, /Attendance/, 'the new handler rendered the page')
  t.same(ficus.legacy.requests.map((r) => `${r.headers.host} ${r.target}`).sort(),
    SCHOOLS.filter((s) => s.id !== 'school-a').map((s) => `${s.id}.localhost ${attendance.url}`).sort(),
    'legacy saw every school but school-a')
  t.same(await sides(ficus, timetable.url), expected([]), 'another route is not moved by this flag')
})

t.test('a constraint cohort IN [pilot] moves exactly the pilot schools, whatever their other cohorts', async (t) => {
  await configureFlag(unleash, attendance.flag, { enabled: true, strategies: [defaultStrategy([constraintIn('cohort', ['pilot'])])] })
  const ficus = await startFicus(t, { unleash, schools: SCHOOLS })

  t.same(await sides(ficus, attendance.url), expected(PILOT_SCHOOLS), `new for ${PILOT_SCHOOLS.join(', ')} only`)
  t.same(await sides(ficus, attendance.url), expected(PILOT_SCHOOLS), 'the same on a second round (answers from memory)')
})

t.test('the kill switch sends what it covers to legacy, whatever the route flags say', async (t) => {
  const both = defaultStrategy([constraintIn('tenantId', ['school-a', 'school-b'])])
  await configureFlag(unleash, attendance.flag, { enabled: true, strategies: [both] })
  await configureFlag(unleash, timetable.flag, { enabled: true, strategies: [both] })
  await configureFlag(unleash, KILL_SWITCH, { type: 'kill-switch', enabled: false, strategies: [] })
  const ficus = await startFicus(t, { unleash, schools: SCHOOLS, env: { KILL_SWITCH_FLAG: KILL_SWITCH } })
  t.same(await sides(ficus, attendance.url), expected(['school-a', 'school-b']), 'kill switch off: the route flag decides')

  // Covers school-a only: the switch is scoped like any flag.
  await unleash.admin.addStrategy(KILL_SWITCH, unleash.environment, defaultStrategy([constraintIn('tenantId', ['school-a'])]))
  await unleash.admin.enable(KILL_SWITCH, unleash.environment)
  const latency = await ficus.waitForSide('school-a', attendance.url, 'legacy', FLIP_WAIT_MS)
  t.comment(`kill switch seen by ficus ${Math.round(latency)} ms after the Admin API call`)
  t.same(await sides(ficus, attendance.url), expected(['school-b']), 'school-a goes to legacy on attendance, school-b stays new')
  t.same(await sides(ficus, timetable.url), expected(['school-b']), 'and on every other migrated route')
  const decisions = await ficus.decisions('school-a')
  const routes = (decisions.body as { routes: Array<{ route: string, backend: string, flag: string, reason: string }> }).routes
  t.ok(routes.length >= 2 && routes.every((route) => route.backend === 'legacy' && route.flag === KILL_SWITCH && /kill switch/.test(route.reason)),
    `/decisions names the kill switch as the reason: ${JSON.stringify(routes.map((r) => r.reason))}`)

  await unleash.admin.disable(KILL_SWITCH, unleash.environment)
  await ficus.waitForSide('school-a', attendance.url, 'new', FLIP_WAIT_MS)
  t.same(await sides(ficus, timetable.url), expected(['school-a', 'school-b']), 'switched off again: the route flags decide again')
})

interface RouteDecisionBody {
  route: string
  method: string
  url: string
  backend: string
  flag: string
  reason: string
  detail: { enabled: boolean, reason: string, strategy?: { index: number, name: string, constraints?: Array<{ contextName: string, operator: string, values?: string[] }> } }
}

t.test('GET /decisions?tenant= explains every route for a school: the strategy and constraint that matched, or why none did', async (t) => {
  await configureFlag(unleash, attendance.flag, {
    enabled: true,
    strategies: [
      defaultStrategy([constraintIn('cohort', ['wave-9'])]),
      flexibleRollout({ rollout: 100, stickiness: 'tenantId', groupId: attendance.flag, constraints: [constraintIn('tenantId', ['school-a'])] })
    ]
  })
  await configureFlag(unleash, timetable.flag, { enabled: false, strategies: [defaultStrategy()] })
  await configureFlag(unleash, KILL_SWITCH, { type: 'kill-switch', enabled: false, strategies: [] })
  const ficus = await startFicus(t, { unleash, schools: SCHOOLS, env: { KILL_SWITCH_FLAG: KILL_SWITCH } })

  const a = await ficus.decisions('school-a')
  t.equal(a.status, 200)
  const body = a.body as { tenant: { id: string, cohorts: string[] }, routes: RouteDecisionBody[] }
  t.same(body.tenant, { id: 'school-a', status: 'active', cohorts: ['pilot'] }, 'names the school and its cohorts')
  t.same(body.routes.map((r) => r.route).sort(), migratedRoutes.map((r) => r.name).sort(), 'every declared route')
  const aAttendance = body.routes.find((r) => r.route === 'attendance.page')
  t.match(aAttendance, { method: 'GET', url: attendance.url, backend: 'new', flag: attendance.flag, reason: 'strategy 2 (flexibleRollout) matched' })
  t.same(aAttendance?.detail.strategy?.constraints?.map((c) => [c.contextName, c.operator, c.values]), [['tenantId', 'IN', ['school-a']]],
    'gives the constraint that matched')
  const aTimetable = body.routes.find((r) => r.route === 'timetable.page')
  t.match(aTimetable, { backend: 'legacy', flag: timetable.flag, reason: 'flag is disabled in this environment' })

  const b = (await ficus.decisions('school-b')).body as { routes: RouteDecisionBody[] }
  t.match(b.routes.find((r) => r.route === 'attendance.page'), { backend: 'legacy', reason: 'none of the 2 strategies matched' }, 'says why not')

  for (const school of SCHOOLS) {
    const explained = ((await ficus.decisions(school.id)).body as { routes: RouteDecisionBody[] }).routes
    for (const route of [attendance, timetable]) {
      const served = (await ficus.get(school.id, route.url)).servedBy
      t.equal(explained.find((r) => r.route === route.name)?.backend, served, `${school.id} ${route.name}: /decisions says what the public port does (${served})`)
    }
  }

  t.equal((await ficus.decisions('school-zz')).status, 404, 'an unknown school is a 404')
})
