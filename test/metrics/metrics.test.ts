// /metrics on the admin listener parses with a strict Prometheus text parser and has the series
// README "Metrics" lists, with bounded labels (cohorts, never schools); every request writes one
// JSON access log line with its fields and no cookie or token in any line.
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { migratedRoute } from '../../core/route.ts'
import { flagsFor, startSafetyKit } from '../helpers/safety-kit.ts'
import { parsePrometheusText, sampleSum, sampleValue } from '../helpers/prometheus-text.ts'

const ROUTE = 'attendance.page'
const FLAG = 'attendance-page'
const COOKIE_VALUE = 'c00kie-s3cret-value-4f1c'
const TOKEN_VALUE = 'bearer-t0ken-value-9a2b'
const TENANTS = {
  tenants: [
    { id: 'school-a', name: 'A', status: 'active', cohorts: ['pilot', 'wave-1'] },
    { id: 'school-b', name: 'B', status: 'active', cohorts: [] },
    { id: 'school-c', name: 'C', status: 'active', cohorts: ['wave-2'] },
    { id: 'school-d', name: 'D', status: 'active', cohorts: ['wave-3'] }
  ]
}

const route = migratedRoute({
  name: ROUTE,
  method: 'GET',
  url: '/attendance',
  flag: FLAG,
  access: 'public',
  handler: async (request: FastifyRequest) => ({ servedBy: 'new', school: request.tenant.id })
})

t.test('/metrics parses strictly and has the series, with bounded labels', async (t) => {
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ [FLAG]: ['school-a'] }), tenants: TENANTS, env: { METRICS_MAX_COHORTS: '2' } })
  const headers = { cookie: `session=${COOKIE_VALUE}`, authorization: `Bearer ${TOKEN_VALUE}` }
  t.equal((await kit.request('school-a', '/attendance', { headers })).headers['x-served-by'], 'new')
  t.equal((await kit.request('school-b', '/attendance', { headers })).headers['x-served-by'], 'legacy')
  await kit.request('school-c', '/attendance?token=query-secret')
  await kit.request('school-d', '/timetable')
  t.equal((await kit.request('school-zz', '/attendance')).status, 404)

  const scrape = await kit.admin('/metrics')
  t.equal(scrape.status, 200)
  t.match(String(scrape.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const metrics = parsePrometheusText(scrape.text)

  t.equal(metrics.get('ficus_requests_total')?.type, 'counter')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: ROUTE, backend: 'new', status_class: '2xx', cohort: 'pilot' }), 1, 'school-a counted under its first cohort')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: ROUTE, backend: 'legacy', status_class: '2xx', cohort: 'none' }), 1, 'school-b has no cohort')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: ROUTE, backend: 'legacy', cohort: 'wave-2' }), 1, 'second distinct cohort: its own label')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: 'unmigrated', backend: 'legacy', cohort: 'other' }), 1, 'past METRICS_MAX_COHORTS: other')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: 'none', backend: 'none', status_class: '4xx' }), 1, 'unknown school: answered by ficus')
  t.equal(sampleSum(metrics, 'ficus_requests_total'), 5)

  t.equal(metrics.get('ficus_request_duration_seconds')?.type, 'histogram')
  t.equal(sampleValue(metrics, 'ficus_request_duration_seconds_count', { route: ROUTE, backend: 'new' }), 1)
  t.equal(sampleValue(metrics, 'ficus_request_duration_seconds_bucket', { route: ROUTE, backend: 'legacy', le: '+Inf' }), 2)

  for (const name of ['ficus_fallbacks_total', 'ficus_breaker_trips_total', 'ficus_shadow_comparisons_total', 'ficus_shadow_dropped_total']) t.equal(metrics.get(name)?.type, 'counter', `${name} declared`)
  t.equal(sampleValue(metrics, 'ficus_fallbacks_total', { route: ROUTE }), 0)
  t.equal(sampleValue(metrics, 'ficus_breaker_trips_total', { route: ROUTE }), 0)
  t.equal(sampleValue(metrics, 'ficus_breaker_schools', { route: ROUTE, state: 'open' }), 0)
  t.equal(sampleValue(metrics, 'ficus_flags_ready'), 1)
  t.equal(sampleValue(metrics, 'ficus_flags_source_reachable'), 1)
  t.equal(metrics.get('ficus_flags_stale_seconds')?.type, 'gauge')

  const schools = new Set(TENANTS.tenants.map((tenant) => tenant.id))
  for (const family of metrics.values()) {
    for (const sample of family.samples) {
      for (const value of Object.values(sample.labels)) t.notOk(schools.has(value), `no label names a school (${sample.name})`)
    }
  }
})

t.test('one JSON access log line per request, with its fields and no cookie, token or query', async (t) => {
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ [FLAG]: ['school-a'] }), tenants: TENANTS })
  const headers = { cookie: `session=${COOKIE_VALUE}; theme=dark`, authorization: `Bearer ${TOKEN_VALUE}`, 'x-request-id': 'not-trusted' }
  await kit.request('school-a', '/attendance?token=query-secret', { headers })
  await kit.request('school-b', '/attendance', { headers })
  await kit.request('school-b', '/files/report.pdf', { headers })
  await kit.request('nowhere', '/x', { headers })

  const lines = kit.logs.filter((line) => line.msg === 'request')
  t.equal(lines.length, 4, 'one line per request')
  for (const line of lines) {
    t.type(line.reqId, 'string')
    t.type(line.durationMs, 'number')
    t.type(line.status, 'number')
  }
  t.match(lines[0], { tenant: 'school-a', method: 'GET', path: '/attendance', route: ROUTE, backend: 'new', status: 200 })
  t.match(lines[1], { tenant: 'school-b', route: ROUTE, backend: 'legacy', status: 200 })
  t.match(lines[2], { tenant: 'school-b', path: '/files/report.pdf', route: 'unmigrated', backend: 'legacy' })
  t.match(lines[3], { tenant: undefined, route: 'none', backend: 'none', status: 404 })
  t.equal(new Set(lines.map((line) => line.reqId)).size, 4, 'distinct request ids')
  t.equal(kit.legacy.requests[0]?.headers['x-request-id'], lines[1]?.reqId, 'the logged id is the one legacy received')

  const everything = kit.logs.map((line) => JSON.stringify(line)).join('\n')
  t.notMatch(everything, COOKIE_VALUE, 'no cookie value in any log line')
  t.notMatch(everything, TOKEN_VALUE, 'no token in any log line')
  t.notMatch(everything, 'query-secret', 'no query string in any log line')
})

t.test('ACCESS_LOG=false turns the line off', async (t) => {
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ [FLAG]: [] }), env: { ACCESS_LOG: 'false' } })
  await kit.request('school-a', '/attendance')
  t.equal(kit.logs.filter((line) => line.msg === 'request').length, 0)
})
