// Several legacy apps behind one URL: a Flask service, a Zope stand-in (the recording legacy) and
// a WebSocket app, all real servers on loopback ports, chosen by path prefix from a 20-entry
// table. Each path reaches its app byte for byte, one app down fails only its own paths, the
// metrics and access log name the upstream, and a school on a shard reaches only that shard.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { startRecordingLegacy } from '../helpers/recording-legacy.ts'
import { startWsEchoApp } from '../helpers/ws-echo.ts'
import { ATTENDANCE_ROUTE, DEFAULT_TENANTS, startProxy } from '../helpers/proxy-kit.ts'
import { parsePrometheusText, sampleSum } from '../helpers/prometheus-text.ts'
import { FicusMetrics } from '../../metrics/registry.ts'
import { pino } from 'pino'
import { Flags } from '../../flags/flags.ts'
import { decisionsFor } from '../../proxy/decisions.ts'
import { legacyRouterOf } from '../../proxy/server.ts'
import { migratedRoute } from '../../core/route.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'

const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix: `ficus-test:upstreams:${randomUUID()}:` })
const zope = await startRecordingLegacy(t)
const wsApp = await startWsEchoApp(t)
const shardZope = await startRecordingLegacy(t)

// 20 prefixes, as a real platform's table: most go to services this test does not look at
// (pointed at the three apps so that every entry is live), the rest are what it checks.
const routes: Record<string, string> = { '/wsgi/': 'flask', '/live': 'ws-app', '/live/zope-again/': 'zope' }
for (let i = 0; i < 17; i++) routes[`/svc-${i}/`] = ['flask', 'ws-app', 'zope'][i % 3] as string
const table = {
  upstreams: {
    zope: { url: zope.url },
    flask: { url: flask.url, timeoutMs: 5_000, connections: 8 },
    'ws-app': { url: wsApp.url, keepAliveMs: 1_000 },
    'north-zope': { url: shardZope.url }
  },
  routes,
  default: 'zope',
  shards: { north: { routes: { '/live': 'north-zope' }, default: 'north-zope' } }
}
const tenants = { tenants: [...DEFAULT_TENANTS.tenants, { id: 'school-n', name: 'School N', status: 'active', cohorts: [], legacy: 'north' }] }
const metrics = new FicusMetrics({ routes: [ATTENDANCE_ROUTE.name], upstreams: Object.keys(table.upstreams), processMetrics: false })
const proxy = await startProxy(t, { env: { LEGACY_UPSTREAMS: JSON.stringify(table) }, tenants, metrics })

t.test('each path reaches its app, with the canonical path the decision used', async (t) => {
  const toFlask = await proxy.send({ path: '/wsgi/a%7eb/c?q=%27x%27&r' })
  t.equal(toFlask.statusCode, 200)
  const seen = JSON.parse(toFlask.text) as { path: string, raw_uri: string, headers: string[][] }
  t.equal(seen.raw_uri, '/wsgi/a~b/c?q=%27x%27&r', 'Flask received the canonical path and the raw query')
  t.equal(toFlask.header('x-served-by'), 'legacy')

  // Other spellings of a prefix reach the same app: case (Flask itself is case-sensitive, and
  // answers its own 404), repeated slashes, encoded letters, no trailing slash.
  const others = zope.requests.length + wsApp.requests.length
  for (const [spelling, flaskSees] of [['/WSGI/x', 404], ['//wsgi//x', 200], ['/%77sgi/x', 200], ['/wsgi', 404]] as const) {
    const answer = await proxy.send({ path: spelling })
    t.equal(answer.statusCode, flaskSees, spelling)
    t.match(answer.text, flaskSees === 200 ? /"raw_uri":"\/wsgi\/x"/ : /<title>404 Not Found<\/title>/, `${spelling} reached Flask`)
  }
  t.equal(zope.requests.length + wsApp.requests.length, others, 'and no other app')
  const live = await proxy.send({ path: '/live/info' })
  t.equal(live.text, 'ws-app GET /live/info')
  const longer = await proxy.send({ path: '/live/zope-again/page' })
  t.equal(longer.text, 'legacy GET /live/zope-again/page', 'the longest prefix wins')
  const whole = await proxy.send({ path: '/lively' })
  t.equal(whole.text, 'legacy GET /lively', 'prefixes match whole segments only')
  t.notOk(zope.requests.some((request) => request.target.startsWith('/wsgi') || request.target.toLowerCase().includes('wsgi')), 'Zope never saw a Flask path')
  t.notOk(wsApp.requests.some((line) => line.includes('zope-again') || line.includes('lively')), 'the WebSocket app saw only its own paths')
})

t.test('bodies and Set-Cookie pass byte for byte to and from the default app', async (t) => {
  const body = randomBytes(256 * 1024)
  zope.handle(async ({ res, record }) => {
    await record.ended
    res.writeHead(201, { 'content-type': 'application/octet-stream', 'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly'] })
    res.end(Buffer.from(record.body ?? Buffer.alloc(0)).reverse())
  })
  const before = zope.requests.length
  const answer = await proxy.send({ method: 'POST', path: '/upload/x', body, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(answer.statusCode, 201)
  const received = zope.requests[before]
  t.equal(received?.bodySha256, createHash('sha256').update(body).digest('hex'), 'the upload arrived unchanged')
  t.ok(answer.body.equals(Buffer.from(body).reverse()), 'the answer came back unchanged')
  t.same(answer.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly'])
  zope.handle(async ({ res, record }) => {
    await record.ended.catch(() => undefined)
    const text = `legacy ${record.method} ${record.target}`
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  })
})

t.test('a school on a shard reaches only its shard', async (t) => {
  const zopeBefore = zope.requests.length
  const wsBefore = wsApp.requests.length
  for (const path of ['/', '/live/info', '/wsgi/x', '/reports/1']) {
    const answer = await proxy.send({ path, host: 'school-n.localhost' })
    t.equal(answer.statusCode, 200, path)
    t.equal(answer.text, `legacy GET ${path}`, `${path} answered by the shard's app`)
  }
  t.equal(shardZope.requests.length, 4)
  t.equal(zope.requests.length, zopeBefore, 'the main Zope saw none of them')
  t.equal(wsApp.requests.length, wsBefore, 'nor did the main WebSocket app')
  const other = await proxy.send({ path: '/', host: 'school-a.localhost' })
  t.equal(other.text, 'legacy GET /')
  t.equal(shardZope.requests.length, 4, 'and other schools never reach the shard')
})

t.test('metrics and the access log name the upstream', async (t) => {
  const families = parsePrometheusText(await metrics.text())
  const count = (upstream: string): number => sampleSum(families, 'ficus_legacy_requests_total', { upstream, status_class: '2xx' })
  t.equal(count('flask'), 3, 'the three pages Flask served (its two 404s are 4xx)')
  t.ok(count('ws-app') >= 1, `ws-app: ${count('ws-app')}`)
  t.ok(count('zope') >= 3, `zope: ${count('zope')}`)
  t.equal(count('north-zope'), 4)
  const line = await proxy.waitForLog((l) => l.msg === 'request' && l.path === '/live/info' && l.tenant === 'school-a', 'the access line of /live/info')
  t.equal(line.upstream, 'ws-app')
  t.ok(sampleSum(families, 'ficus_legacy_request_seconds_total', { upstream: 'flask' }) > 0, 'time is kept per upstream')
})

t.test('/decisions names the legacy upstream of each route, for each school', async (t) => {
  const flags = await Flags.fromFile(proxy.flagsFile, pino({ level: 'silent' }), 100)
  t.teardown(() => flags.close())
  const timetable = migratedRoute({ name: 'timetable.page', method: 'GET', url: '/wsgi/timetable/:week', flag: 'timetable-page', handler: async () => ({}) })
  const parts = { registry: proxy.registry, flags, routes: [ATTENDANCE_ROUTE, timetable], killSwitchFlag: undefined, legacyRouter: legacyRouterOf(proxy.config) }
  t.same(decisionsFor('school-a', parts)?.routes.map((route) => [route.route, route.legacyUpstream]), [['attendance.page', 'zope'], ['timetable.page', 'flask']])
  t.same(decisionsFor('school-n', parts)?.routes.map((route) => [route.route, route.legacyUpstream]), [['attendance.page', 'north-zope'], ['timetable.page', 'north-zope']])
})

t.test('one app down: 502 on its paths only, never retried elsewhere', async (t) => {
  await flask.stop()
  const zopeBefore = zope.requests.length
  const wsBefore = wsApp.requests.length
  const down = await proxy.send({ path: '/wsgi/x' })
  t.equal(down.statusCode, 502)
  t.match(down.text, /FICUS_ERR_LEGACY_UNAVAILABLE/)
  const downPost = await proxy.send({ method: 'POST', path: '/svc-0/write', body: 'x=1', headers: { 'content-type': 'text/plain' } })
  t.equal(downPost.statusCode, 502, 'a service pointed at the stopped app fails too')
  t.equal(zope.requests.length, zopeBefore, 'nothing was retried on Zope')
  t.equal(wsApp.requests.length, wsBefore, 'nor on the WebSocket app')
  t.equal((await proxy.send({ path: '/page' })).statusCode, 200, 'Zope still answers')
  t.equal((await proxy.send({ path: '/live/x' })).text, 'ws-app GET /live/x', 'the WebSocket app still answers')
  const families = parsePrometheusText(await metrics.text())
  t.equal(sampleSum(families, 'ficus_legacy_requests_total', { upstream: 'flask', status_class: '5xx' }), 2, 'the 502s count against flask')
  t.equal(sampleSum(families, 'ficus_legacy_requests_total', { upstream: 'zope', status_class: '5xx' }), 0, 'and against nobody else')
})
