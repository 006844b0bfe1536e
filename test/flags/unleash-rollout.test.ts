// Percentages and flips set in a real Unleash server, seen through real ficus processes: a
// tenantId-sticky rollout moves its share of schools and the same ones on every replica, and a
// flip through the Admin API reaches ficus within the 2 s.
import t from 'tap'
import {
  configureFlag,
  declareContextFields,
  declaredRoute,
  mapLimit,
  startFicus,
  TEST_REFRESH_MS,
  type RunningFicus,
  type School
} from '../helpers/ficus-process.ts'
import { startRecordingLegacy } from '../helpers/recording-legacy.ts'
import { constraintIn, defaultStrategy, flexibleRollout, startUnleash } from '../helpers/unleash.ts'

const attendance = declaredRoute('attendance.page')
const timetable = declaredRoute('timetable.page')
const SCHOOL_COUNT = 1_000
const ROLLOUT_PERCENT = 30
const TOLERANCE_PERCENT = 5
const REPLICAS = 3
const CONCURRENT_REQUESTS = 8
// The bound for a flip made in Unleash to reach ficus.
const FLIP_BOUND_MS = 2_000
const FLIP_WAIT_MS = 10_000

const unleash = await startUnleash(t)
t.comment(`unleash-server started in ${unleash.lastStartMs} ms`)
await declareContextFields(unleash)

const MANY_SCHOOLS: readonly School[] = Array.from({ length: SCHOOL_COUNT }, (_, i) => ({
  id: `school-${String(i + 1).padStart(4, '0')}`,
  cohorts: i % 3 === 0 ? ['wave-1'] : []
}))

async function sidesOnPublicPort (ficus: RunningFicus): Promise<string[]> {
  return mapLimit(MANY_SCHOOLS, CONCURRENT_REQUESTS, async (school) => String((await ficus.get(school.id, attendance.url)).servedBy))
}

t.test(`a ${ROLLOUT_PERCENT}% rollout sticky on tenantId moves ${ROLLOUT_PERCENT}% ± ${TOLERANCE_PERCENT}% of ${SCHOOL_COUNT} schools, the same ones on ${REPLICAS} ficus processes`, async (t) => {
  await configureFlag(unleash, attendance.flag, {
    enabled: true,
    strategies: [flexibleRollout({ rollout: ROLLOUT_PERCENT, stickiness: 'tenantId', groupId: attendance.flag })]
  })
  const legacy = await startRecordingLegacy(t)
  const replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startFicus(t, { unleash, schools: MANY_SCHOOLS, legacy })))

  const first = await sidesOnPublicPort(replicas[0] as RunningFicus)
  const moved = first.filter((side) => side === 'new').length
  t.comment(`${moved} of ${SCHOOL_COUNT} schools moved to new at ${ROLLOUT_PERCENT}%`)
  t.same([...new Set(first)].sort(), ['legacy', 'new'], 'every answer is new or legacy')
  const low = SCHOOL_COUNT * (ROLLOUT_PERCENT - TOLERANCE_PERCENT) / 100
  const high = SCHOOL_COUNT * (ROLLOUT_PERCENT + TOLERANCE_PERCENT) / 100
  t.ok(moved >= low && moved <= high, `${moved} moved, within ${low}..${high}`)

  for (const [i, replica] of replicas.entries()) {
    const sides = await sidesOnPublicPort(replica)
    const differing = MANY_SCHOOLS.filter((_, j) => sides[j] !== first[j]).map((school) => school.id)
    t.same(differing, [], `process ${i + 1}: every school gets the same side as on process 1${i === 0 ? ' (second round)' : ''}`)
  }

  const explained = await mapLimit(MANY_SCHOOLS, CONCURRENT_REQUESTS, async (school) => {
    const body = (await (replicas[REPLICAS - 1] as RunningFicus).decisions(school.id)).body as { routes: Array<{ route: string, backend: string }> }
    return String(body.routes.find((route) => route.route === attendance.name)?.backend)
  })
  t.same(MANY_SCHOOLS.filter((_, j) => explained[j] !== first[j]).map((s) => s.id), [], '/decisions agrees with the public port for every school')
  // Process 1 was asked twice, the others once.
  t.equal(legacy.requests.length, (REPLICAS + 1) * (SCHOOL_COUNT - moved), 'legacy saw exactly the requests of the schools that stayed')
})

t.test(`a flip through the Admin API is seen by ficus within ${FLIP_BOUND_MS} ms`, async (t) => {
  const schools: readonly School[] = [{ id: 'school-a' }, { id: 'school-b' }]
  await configureFlag(unleash, timetable.flag, { enabled: false, strategies: [defaultStrategy([constraintIn('tenantId', ['school-a'])])] })
  const ficus = await startFicus(t, { unleash, schools })
  t.equal((await ficus.get('school-a', timetable.url)).servedBy, 'legacy', 'flag off: legacy')

  const latencies: number[] = []
  for (const [step, side] of [['on', 'new'], ['off', 'legacy'], ['on', 'new']] as const) {
    const clicked = performance.now()
    if (step === 'on') await unleash.admin.enable(timetable.flag, unleash.environment)
    else await unleash.admin.disable(timetable.flag, unleash.environment)
    const seen = await ficus.waitForSide('school-a', timetable.url, side, FLIP_WAIT_MS)
    const latency = Math.round(performance.now() - clicked)
    latencies.push(latency)
    t.ok(latency <= FLIP_BOUND_MS, `flip ${step}: school-a served by ${side} ${latency} ms after the Admin API call (polled ${Math.round(seen)} ms)`)
    t.equal((await ficus.get('school-b', timetable.url)).servedBy, 'legacy', 'school-b is not moved by the flip')
  }
  t.comment(`flip latencies (Admin API call to ficus serving the other side, UNLEASH_REFRESH_MS=${TEST_REFRESH_MS}): ${latencies.join(' / ')} ms`)
})
