// An Unleash answer that no longer lists route flags (flags archived by mistake, an emptied
// project) moves no school: ficus keeps each missing flag's last definition, logs it once, counts
// it and shows it in /readyz and /decisions, and lets it go when the server lists it again.
// A real Unleash server and a real ficus process, over random subsets of the declared route flags.
import t from 'tap'
import fc from 'fast-check'
import { migratedRoutes } from '../../new-routes/index.ts'
import { configureFlag, declareContextFields, startFicus, type Readyz } from '../helpers/ficus-process.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { constraintIn, defaultStrategy, startUnleash } from '../helpers/unleash.ts'

const ROUTE_FLAGS = [...new Set(migratedRoutes.map((route) => route.flag))]
const SCHOOLS = [{ id: 'school-a', cohorts: ['pilot'] }, { id: 'school-b' }]
const SEEN_WAIT_MS = 20_000
const MISSING_LOG = 'route flag missing from the flag source: keeping its last known definition'

interface Decision { route: string, backend: string, reason: string }
interface Missing { flag: string, routes: string[], missingSince: string }
const missingOf = (readyz: Readyz): string[] =>
  ((readyz.body.checks.flags.detail as unknown as { missingFlags: Missing[] }).missingFlags).map((entry) => entry.flag).sort()

const unleash = await startUnleash(t)
await declareContextFields(unleash)
const onForSchoolA = { enabled: true, strategies: [defaultStrategy([constraintIn('tenantId', ['school-a'])])] }
for (const flag of ROUTE_FLAGS) await configureFlag(unleash, flag, onForSchoolA)

const ficus = await startFicus(t, { unleash, schools: SCHOOLS })
const decisions = async (school: string): Promise<Decision[]> => ((await ficus.decisions(school)).body as { routes: Decision[] }).routes
const baseline = { 'school-a': await decisions('school-a'), 'school-b': await decisions('school-b') }

t.test('baseline: every route on new for school-a and on legacy for school-b', async (t) => {
  t.ok(baseline['school-a'].every((d) => d.backend === 'new'), JSON.stringify(baseline['school-a']))
  t.ok(baseline['school-b'].every((d) => d.backend === 'legacy'), JSON.stringify(baseline['school-b']))
})

t.test('random subsets of route flags gone from the Unleash answer move no school', async (t) => {
  const removals = new Map<string, number>()
  await fc.assert(fc.asyncProperty(fc.subarray(ROUTE_FLAGS, { minLength: 1 }), async (dropped) => {
    for (const flag of dropped) await unleash.admin.deleteFlag(flag)
    await unleash.served((features) => features.every((feature) => !dropped.includes(feature.name)))
    for (const flag of dropped) removals.set(flag, (removals.get(flag) ?? 0) + 1)
    const readyz = await ficus.waitForReadyz((r) => JSON.stringify(missingOf(r)) === JSON.stringify([...dropped].sort()), `missingFlags = ${dropped.join(',')}`, SEEN_WAIT_MS)
    if (readyz.status !== 200) throw new Error(`/readyz ${readyz.status}`)

    for (const school of ['school-a', 'school-b'] as const) {
      for (const decision of await decisions(school)) {
        const before = baseline[school].find((d) => d.route === decision.route)
        if (decision.backend !== before?.backend) throw new Error(`${school} ${decision.route} moved to ${decision.backend} with ${dropped.join(',')} gone`)
        const flag = migratedRoutes.find((route) => route.name === decision.route)?.flag ?? ''
        if (dropped.includes(flag) && !/missing from unleash .*last known definition/.test(decision.reason)) throw new Error(`/decisions: ${decision.reason}`)
      }
    }
    for (const [school, side] of [['school-a', 'new'], ['school-b', 'legacy']] as const) {
      const answer = await ficus.get(school, '/attendance')
      if (answer.servedBy !== side) throw new Error(`${school} /attendance served by ${answer.servedBy ?? '-'} (status ${answer.status})`)
    }

    for (const flag of dropped) await configureFlag(unleash, flag, onForSchoolA)
    await ficus.waitForReadyz((r) => missingOf(r).length === 0, 'every flag back', SEEN_WAIT_MS)
  }), { numRuns: 4, examples: [[ROUTE_FLAGS]] })

  for (const flag of ROUTE_FLAGS) {
    t.equal(ficus.logs((line) => line.msg === MISSING_LOG && line.flag === flag).length, removals.get(flag) ?? 0, `${flag}: one warning per disappearance`)
  }
  const metrics = parsePrometheusText(await (await fetch(`${ficus.adminOrigin}/metrics`)).text())
  for (const [flag, count] of removals) t.equal(sampleValue(metrics, 'ficus_flags_missing_total', { flag }), count, `ficus_flags_missing_total{flag="${flag}"} = ${count}`)
  t.equal(sampleValue(metrics, 'ficus_flags_missing'), 0, 'nothing held once all are back')
})

t.test('a restart while a flag is missing keeps it held: the backup carries its last definition', async (t) => {
  await unleash.admin.deleteFlag('timetable-page')
  await unleash.served((features) => !features.some((feature) => feature.name === 'timetable-page'))
  await ficus.waitForReadyz((r) => missingOf(r).includes('timetable-page'), 'timetable-page missing', SEEN_WAIT_MS)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const restarted = await startFicus(t, { unleash, schools: SCHOOLS, env: { UNLEASH_BACKUP_DIR: ficus.backupDir } })
  await restarted.waitForReadyz((r) => missingOf(r).includes('timetable-page'), 'timetable-page held after the restart', SEEN_WAIT_MS)
  for (const school of ['school-a', 'school-b'] as const) {
    const now = ((await restarted.decisions(school)).body as { routes: Decision[] }).routes
    t.same(now.map((d) => d.backend), baseline[school].map((d) => d.backend), `${school}: every route where it was before the restart`)
  }
  t.equal((await restarted.get('school-a', '/timetable')).servedBy, 'new', 'school-a /timetable still on new')
  await configureFlag(unleash, 'timetable-page', onForSchoolA)
  await restarted.waitForReadyz((r) => missingOf(r).length === 0, 'timetable-page back', SEEN_WAIT_MS)
  await restarted.stop()
})

t.test('a flag the server lists again decides from the server again', async (t) => {
  await unleash.admin.deleteFlag('attendance-page')
  await ficus.waitForReadyz((r) => missingOf(r).includes('attendance-page'), 'attendance-page missing', SEEN_WAIT_MS)
  await configureFlag(unleash, 'attendance-page', { enabled: true, strategies: [defaultStrategy([constraintIn('tenantId', ['school-b'])])] })
  await ficus.waitForSide('school-b', '/attendance', 'new', SEEN_WAIT_MS)
  t.equal((await ficus.get('school-a', '/attendance')).servedBy, 'legacy', 'the new definition, not the held one')
})
