// ficus as a process with a legacy routing table: each upstream is pre-warmed through its own
// pool and has its own /readyz line, an upstream that is down is reported there (best effort,
// readiness goes ahead) while the others serve, and a school pinned to a shard the table does not
// declare is named at startup.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { closedPort, DEFAULT_TENANTS, flagsOnFor, spawnFicus, writeJson } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy } from '../helpers/recording-legacy.ts'

const dir = mkdtempSync(join(tmpdir(), 'ficus-upstreams-process-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeJson(join(dir, 'tenants.json'), { tenants: [...DEFAULT_TENANTS.tenants, { id: 'school-x', name: 'School X', status: 'active', cohorts: [], legacy: 'nowhere' }] })
writeJson(join(dir, 'flags.json'), flagsOnFor([]))
const zope = await startRecordingLegacy(t)
const reports = await startRecordingLegacy(t)
const table = {
  upstreams: { zope: { url: zope.url }, reports: { url: reports.url }, gone: { url: `http://127.0.0.1:${await closedPort()}` } },
  routes: { '/reports': 'reports', '/gone': 'gone' },
  default: 'zope'
}
const ficus = spawnFicus(t, {
  HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', LEGACY_UPSTREAMS: JSON.stringify(table), PREWARM_LEGACY_CONNECTIONS: '2', PREWARM_PATH: '/healthz',
  TENANTS_FILE: join(dir, 'tenants.json'), FLAGS_FILE: join(dir, 'flags.json'), LOG_LEVEL: 'info'
})
const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')

t.test('a pre-warm and a readiness line per upstream', async (t) => {
  const answer = await request(`${String(serving.admin)}/readyz`)
  const body = await answer.body.json() as { status: string, checks: Record<string, { ready: boolean, detail: { url?: string, prewarm?: string } }> }
  t.equal(answer.statusCode, 200, 'ready: the pre-warm is best effort')
  t.match(body.checks['legacy zope']?.detail, { url: zope.url, prewarm: /^ok: legacy answered GET \/healthz with 200 x2$/ })
  t.match(body.checks['legacy reports']?.detail, { url: reports.url, prewarm: /^ok: legacy answered GET \/healthz with 200 x2$/ })
  t.match(body.checks['legacy gone']?.detail, { prewarm: /^failed: legacy not reached.*FICUS_ERR_LEGACY_UNAVAILABLE/ })
  t.equal(zope.requests.filter((r) => r.target === '/healthz').length, 2, 'each pre-warm went to its own upstream')
  t.equal(reports.requests.filter((r) => r.target === '/healthz').length, 2)
})

t.test('the upstream that is down fails its paths only', async (t) => {
  const get = async (path: string, host = 'school-a.localhost'): Promise<{ status: number, text: string }> => {
    const answer = await request(`${String(serving.public)}${path}`, { headers: { host } })
    return { status: answer.statusCode, text: await answer.body.text() }
  }
  t.match(await get('/gone/x'), { status: 502, text: /FICUS_ERR_LEGACY_UNAVAILABLE/ })
  t.match(await get('/reports/1'), { status: 200, text: 'legacy GET /reports/1' })
  t.match(await get('/'), { status: 200, text: 'legacy GET /' })
  t.match(await get('/', 'school-x.localhost'), { status: 502, text: /FICUS_ERR_LEGACY_SHARD_UNKNOWN/ }, 'a school on an undeclared shard reaches no legacy')
  t.ok(ficus.logs.some((line) => String(line.msg).startsWith('schools pinned to a legacy shard') && JSON.stringify(line.schools) === '["school-x -> nowhere"]'), 'named at startup')
})
