// What ficus says about itself when it starts: where it listens with the embedded demo defaults
// and what to open, whether its pre-warm reached legacy (in /readyz, in words that match what
// happened, and never as client traffic in the access log), and which declared routes name a
// flag the flag source does not have.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { parseConfig } from '../../proxy/config.ts'
import { closedPort, PROJECT_ROOT, spawnFicus, waitFor, writeJson, type LogLine } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, type TeardownHost } from '../helpers/recording-legacy.ts'

const WAIT_MS = 10_000

async function getJson (url: string, host?: string): Promise<{ status: number, body: any }> {
  const response = await request(url, { headers: host === undefined ? {} : { host }, headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS })
  const text = await response.body.text()
  return { status: response.statusCode, body: text.startsWith('{') ? JSON.parse(text) : text }
}

function tempDir (t: TeardownHost): string {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-startup-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const accessLines = (logs: readonly LogLine[]): LogLine[] => logs.filter((line) => line.msg === 'request')

t.test('HOST defaults to 127.0.0.1 while any embedded default is in use, else to every interface', async (t) => {
  t.equal(parseConfig({}).host, '127.0.0.1', 'nothing configured: the demo stays on this machine')
  t.equal(parseConfig({ LEGACY_URL: 'http://legacy:8080', DATABASE_URL: 'postgres://db/control' }).host, '127.0.0.1', 'sessions still in memory')
  const production = parseConfig({ LEGACY_URL: 'http://legacy:8080', DATABASE_URL: 'postgres://db/control', REDIS_URL: 'redis://redis:6379' })
  t.equal(production.host, '0.0.0.0')
  t.same(production.embedded, [])
  t.equal(parseConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0', 'HOST set wins')
  t.equal(parseConfig({ HOST: '0.0.0.0' }).hostIsDefault, false)
  t.same(parseConfig({}).embedded, ['legacy app (LEGACY_URL)', 'school databases in PGlite (DATABASE_URL)', 'session store in memory (REDIS_URL)'])
})

t.test('the demo with nothing configured: loopback only, the URLs to open, legacy reached, a missing route flag warned of', async (t) => {
  const dir = tempDir(t)
  const flagsFile = join(dir, 'flags.json')
  const flags = JSON.parse(readFileSync(join(PROJECT_ROOT, 'demo/flags.json'), 'utf8')) as { features: Array<{ name: string }> }
  flags.features = flags.features.filter((feature) => feature.name !== 'timetable-page')
  writeJson(flagsFile, flags)

  const ficus = spawnFicus(t, { PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  t.match(serving.public, /^http:\/\/127\.0\.0\.1:\d+$/, 'listens on loopback without HOST')
  const port = new URL(String(serving.public)).port
  const embedded = await ficus.waitForLog((line) => line.msg.startsWith('embedded defaults in use'), 'the embedded defaults line')
  t.match(embedded.msg, /listening on 127\.0\.0\.1 only \(set HOST=0\.0\.0\.0 to listen on every interface\)/)
  t.same(embedded.open, [`http://school-a.localhost:${port}/attendance`, `http://school-b.localhost:${port}/attendance`])
  t.match(embedded.admin, new RegExp(`^${String(serving.admin)}/decisions\\?tenant=school-a$`))
  t.match(embedded.msg, new RegExp(`open http://school-a\\.localhost:${port}/attendance`))

  const warning = await ficus.waitForLog((line) => line.flag === 'timetable-page', 'the missing flag warning')
  t.equal(warning.level, 40, 'a warning')
  t.equal(warning.route, 'timetable.page')
  t.match(warning.msg, /route timetable\.page is guarded by the flag timetable-page, which file .*flags\.json does not define/)
  t.equal(ficus.logs.filter((line) => line.flag !== undefined && line.route !== undefined && line.level === 40).length, 1, 'only the route whose flag is missing')
  const decisions = await getJson(`${String(serving.admin)}/decisions?tenant=school-a`)
  t.match(decisions.body.warnings, [{ route: 'timetable.page', flag: 'timetable-page', message: /does not define/ }])
  t.equal(decisions.body.warnings.length, 1)

  await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')
  await ficus.waitForLog((line) => line.msg === 'embedded school databases created', 'the demo schools\' databases', 120_000)
  const readyz = await getJson(`${String(serving.admin)}/readyz`)
  t.equal(readyz.status, 200)
  t.same(readyz.body.checks['embedded school databases'].detail, { 'school-a': 'ok', 'school-b': 'ok', 'school-c': 'ok' }, 'ready once the demo schools\' databases exist')
  t.match(readyz.body.checks.prewarm.detail.legacy, /^ok: legacy answered GET \/ with 200 x4$/)
  t.same(accessLines(ficus.logs), [], 'the pre-warm requests are not in the access log')

  await getJson(`${String(serving.public)}/reports`, 'school-b.localhost')
  await waitFor(() => accessLines(ficus.logs).length === 1, WAIT_MS, 'the client request in the access log')
  t.match(accessLines(ficus.logs), [{ tenant: 'school-b', path: '/reports', backend: 'legacy' }], 'client traffic is')
  const metrics = await getJson(`${String(serving.admin)}/metrics`)
  const legacyCount = /ficus_requests_total\{[^}]*backend="legacy"[^}]*\} (\d+)/.exec(String(metrics.body))
  t.equal(legacyCount?.[1], '1', 'and only client traffic is counted')
})

t.test('legacy down: /readyz says the pre-warm did not reach legacy, not that legacy answered', async (t) => {
  const ficus = spawnFicus(t, { HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', LEGACY_URL: `http://127.0.0.1:${await closedPort()}`, PREWARM_TIMEOUT_MS: '3000' })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')
  const readyz = await getJson(`${String(serving.admin)}/readyz`)
  const said = String(readyz.body.checks.prewarm.detail.legacy)
  t.match(said, /^failed: legacy not reached: could not connect or no valid answer \(FICUS_ERR_LEGACY_UNAVAILABLE, ficus answered 502\)$/)
  t.notMatch(said, /legacy answered/)
  t.same(accessLines(ficus.logs), [], 'the failed pre-warm requests are not client traffic either')
})

t.test('legacy that answers the pre-warm path with an error is still legacy answering', async (t) => {
  const legacy = await startRecordingLegacy(t, ({ res }) => { res.writeHead(404); res.end('no such page') })
  const ficus = spawnFicus(t, { HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', LEGACY_URL: legacy.url, PREWARM_PATH: '/healthz', PREWARM_LEGACY_CONNECTIONS: '2' })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  t.match(serving.public, /^http:\/\/127\.0\.0\.1:/)
  const embedded = await ficus.waitForLog((line) => line.msg.startsWith('embedded defaults in use'), 'the embedded defaults line')
  t.match(embedded.msg, /listening on 127\.0\.0\.1 \(HOST\)/, 'HOST set: said as such')
  await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')
  const readyz = await getJson(`${String(serving.admin)}/readyz`)
  t.equal(readyz.body.checks.prewarm.detail.legacy, 'ok: legacy answered GET /healthz with 404 x2')
  t.equal(legacy.requests.length, 2)
  t.ok(legacy.requests.every((seen) => seen.headers['x-ficus-internal'] === undefined), 'the internal marker never reaches legacy')
})
