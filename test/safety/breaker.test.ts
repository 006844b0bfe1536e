// The per-(route, school) breaker (README "Breaker"): errors injected for (route, school-b) trip
// only that pair to legacy, school-a stays on the new handler, the trip is logged and counted,
// and after the cool-down one probe closes it again.
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { migratedRoute } from '../../core/route.ts'
import { flagsFor, startSafetyKit, waitFor } from '../helpers/safety-kit.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'

const ROUTE = 'timetable.page'
const FLAG = 'timetable-page'
const COOL_DOWN_MS = 600
const MIN_REQUESTS = 4

t.test('errors for (route, school-b) trip only that pair; after the cool-down it closes', async (t) => {
  const failing = new Set<string>()
  const handled: string[] = []
  const route = migratedRoute({
    name: ROUTE,
    method: 'GET',
    url: '/timetable',
    flag: FLAG,
    access: 'public',
    handler: async (request: FastifyRequest) => {
      handled.push(request.tenant.id)
      if (failing.has(request.tenant.id)) throw new Error('injected failure')
      return { servedBy: 'new', school: request.tenant.id }
    }
  })
  const kit = await startSafetyKit(t, {
    routes: [route],
    flags: flagsFor({ [FLAG]: ['school-a', 'school-b'] }),
    env: { BREAKER_WINDOW_MS: '60000', BREAKER_MIN_REQUESTS: String(MIN_REQUESTS), BREAKER_ERROR_RATE: '0.5', BREAKER_COOL_DOWN_MS: String(COOL_DOWN_MS) }
  })
  const side = async (school: string): Promise<string | undefined> => {
    const answer = await kit.request(school, '/timetable')
    t.equal(answer.status, 200, `${school} always gets an answer`)
    return answer.headers['x-served-by'] as string | undefined
  }

  failing.add('school-b')
  for (let i = 0; i < MIN_REQUESTS; i++) t.equal(await side('school-b'), 'legacy', `failure ${i + 1} falls back to legacy`)
  t.equal(kit.safety.guards[0]?.breaker.state('school-b'), 'open')

  const before = handled.length
  t.equal(await side('school-b'), 'legacy', 'open: school-b goes to legacy')
  t.equal(handled.length, before, 'without running the new handler')
  t.equal(await side('school-a'), 'new', 'school-a stays on new')

  const trip = kit.logs.find((line) => line.msg.startsWith('breaker tripped'))
  t.match(trip, { route: ROUTE, tenant: 'school-b', from: 'closed', to: 'open', requests: MIN_REQUESTS, failures: MIN_REQUESTS })
  const metrics = parsePrometheusText(await kit.metrics.text())
  t.equal(sampleValue(metrics, 'ficus_breaker_trips_total', { route: ROUTE }), 1)
  t.equal(sampleValue(metrics, 'ficus_breaker_schools', { route: ROUTE, state: 'open' }), 1)
  t.equal(sampleValue(metrics, 'ficus_fallbacks_total', { route: ROUTE, reason: 'error' }), MIN_REQUESTS)
  const listing = JSON.parse((await kit.admin('/breakers')).text) as { notClosed: Array<{ route: string, tenant: string, state: string }> }
  t.match(listing.notClosed, [{ route: ROUTE, tenant: 'school-b', state: 'open' }])
  t.equal(listing.notClosed.length, 1)

  // The fault is fixed; after the cool-down the probe goes to the new handler and closes the breaker.
  failing.delete('school-b')
  await waitFor(() => (kit.safety.guards[0]?.breaker.notClosed()[0]?.coolDownLeftMs ?? 0) === 0, COOL_DOWN_MS * 10, 'the cool-down to end')
  t.equal(await side('school-b'), 'new', 'the probe is served by the new handler')
  t.equal(kit.safety.guards[0]?.breaker.state('school-b'), 'closed')
  t.equal(await side('school-b'), 'new')
  t.same(JSON.parse((await kit.admin('/breakers')).text), { notClosed: [] })
  t.ok(kit.logs.some((line) => line.msg === 'breaker closed' && line.tenant === 'school-b'), 'closing is logged')
})

t.test('a failing probe keeps the pair on legacy for another cool-down', async (t) => {
  const route = migratedRoute({
    name: ROUTE,
    method: 'GET',
    url: '/timetable',
    flag: FLAG,
    access: 'public',
    handler: async () => { throw new Error('still broken') }
  })
  const kit = await startSafetyKit(t, {
    routes: [route],
    flags: flagsFor({ [FLAG]: ['school-b'] }),
    env: { BREAKER_MIN_REQUESTS: '2', BREAKER_COOL_DOWN_MS: String(COOL_DOWN_MS) }
  })
  for (let i = 0; i < 2; i++) await kit.request('school-b', '/timetable')
  const breaker = kit.safety.guards[0]?.breaker
  t.equal(breaker?.state('school-b'), 'open')
  await waitFor(() => (breaker?.notClosed()[0]?.coolDownLeftMs ?? 0) === 0, COOL_DOWN_MS * 10, 'the cool-down to end')
  const probe = await kit.request('school-b', '/timetable')
  t.equal(probe.headers['x-served-by'], 'legacy', 'the failed probe still gets the legacy answer')
  t.equal(breaker?.state('school-b'), 'open', 'and the breaker opens again')
  const metrics = parsePrometheusText(await kit.metrics.text())
  t.equal(sampleValue(metrics, 'ficus_breaker_trips_total', { route: ROUTE }), 1, 'a re-open after a probe is not a new trip')
})
