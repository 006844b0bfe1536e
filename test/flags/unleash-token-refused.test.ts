// A 401 or 403 from Unleash (a token revoked, rotated or not valid yet) is not a reason to stop
// polling for good, which is what unleash-client does by itself: ficus keeps the last flags,
// says loudly that they are stale (error log, metrics, /readyz), keeps asking with a backoff, and
// picks up the server's flags as soon as the token is accepted again.
// A real Unleash server behind a gate that, when closed, sends the server a token it does not
// know (so the 401 is the server's own) or answers 403 as Unleash does for a token of the wrong kind.
import t from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { configureFlag, declareContextFields, sleep, startFicus, TEST_REFRESH_MS, type Readyz } from '../helpers/ficus-process.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { DEFAULT_WAIT_MS, waitFor } from '../helpers/recording-legacy.ts'
import { constraintIn, defaultStrategy, startUnleash } from '../helpers/unleash.ts'

const FLAG = 'attendance-page'
const SEEN_WAIT_MS = 20_000
const DENIED_OBSERVE_MS = 4_000
const REFUSED_LOG = 'flag source refuses the API token (UNLEASH_API_TOKEN): flags are stale, retrying with backoff'
const ACCEPTED_LOG = 'flag source accepts the API token again'

const unleash = await startUnleash(t)
await declareContextFields(unleash)
const onFor = (schools: string[]): Parameters<typeof configureFlag>[2] => ({ enabled: true, strategies: [defaultStrategy([constraintIn('tenantId', schools)])] })

let refusing: 401 | 403 | undefined
const featureFetches: Array<{ at: number, refusing: number | undefined }> = []
const gate = createServer((req: IncomingMessage, res: ServerResponse) => {
  void (async () => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    if (req.url?.startsWith('/api/client/features') === true) featureFetches.push({ at: performance.now(), refusing })
    if (refusing === 403) {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"You do not have the required permissions"}')
      return
    }
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && name !== 'host' && name !== 'connection') headers[name] = value
    if (refusing === 401) headers.authorization = 'default:development.a-token-this-server-never-issued'
    const answer = await request(unleash.url + (req.url ?? '/'), { method: req.method as 'GET', headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined })
    const body = Buffer.from(await answer.body.arrayBuffer())
    const out: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !['transfer-encoding', 'connection', 'keep-alive', 'content-length'].includes(name)) out[name] = value
    res.writeHead(answer.statusCode, out).end(body)
  })().catch(() => res.destroy())
})
gate.listen(0, '127.0.0.1')
await once(gate, 'listening')
t.teardown(() => { gate.closeAllConnections(); gate.close() })
const gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/api`

type AuthDetail = { status: number, sinceMs: number, retries: number } | undefined
const authOf = (readyz: Readyz): AuthDetail => (readyz.body.checks.flags.detail as unknown as { authRejected?: AuthDetail }).authRejected

for (const status of [401, 403] as const) {
  t.test(`Unleash answers ${status}: ficus keeps the last flags, says so, keeps asking, and recovers by itself`, async (t) => {
    refusing = undefined
    await configureFlag(unleash, FLAG, onFor(['school-a']))
    const ficus = await startFicus(t, { unleash: { apiUrl: gateUrl, clientToken: unleash.clientToken }, schools: [{ id: 'school-a' }, { id: 'school-b' }] })
    t.equal((await ficus.get('school-a', '/attendance')).servedBy, 'new', 'before: school-a on new')

    refusing = status
    const refusedAt = performance.now()
    const refused = await ficus.waitForReadyz((r) => authOf(r)?.status === status, `authRejected ${status}`, SEEN_WAIT_MS)
    t.equal(refused.status, 200, '/readyz stays 200: the last known flags are served')
    t.equal(refused.body.checks.flags.detail.sourceReachable, false, 'and says the source is not answering')
    // ficus's log reaches the test through its stdout pipe, which can trail /readyz's answer.
    await waitFor(() => ficus.logs((line) => line.msg === REFUSED_LOG).length > 0, DEFAULT_WAIT_MS, 'the refusal\'s error line')
    const logged = ficus.logs((line) => line.msg === REFUSED_LOG)
    t.equal(logged.length, 1, 'one error line when it starts (repeated once a minute while it lasts)')
    t.equal(logged[0]?.level, 50, 'logged as an error')
    t.equal(logged[0]?.status, status)

    // A product owner's change made meanwhile cannot be seen, and the old flags keep deciding.
    await configureFlag(unleash, FLAG, onFor(['school-a', 'school-b']))
    await sleep(DENIED_OBSERVE_MS)
    t.equal((await ficus.get('school-b', '/attendance')).servedBy, 'legacy', 'school-b: still the last known flags')
    t.equal((await ficus.get('school-a', '/attendance')).servedBy, 'new', 'school-a: still the last known flags')
    const asked = featureFetches.filter((fetch) => fetch.at > refusedAt && fetch.refusing === status).length
    t.ok(asked >= 3, `ficus kept asking while refused: ${asked} requests in ${Math.round(performance.now() - refusedAt)} ms`)
    const metrics = parsePrometheusText(await (await fetch(`${ficus.adminOrigin}/metrics`)).text())
    t.equal(sampleValue(metrics, 'ficus_flags_auth_rejected'), 1, 'ficus_flags_auth_rejected 1')
    t.ok((sampleValue(metrics, 'ficus_flags_auth_failures_total') ?? 0) >= 3, 'ficus_flags_auth_failures_total counts the refusals')
    t.ok((authOf(await ficus.readyz())?.retries ?? 0) >= 2, '/readyz counts the retries')

    refusing = undefined
    const openedAt = performance.now()
    await ficus.waitForSide('school-b', '/attendance', 'new', SEEN_WAIT_MS)
    t.comment(`token accepted again: school-b moved ${Math.round(performance.now() - openedAt)} ms later (retries back off from ${TEST_REFRESH_MS} ms)`)
    await ficus.waitForReadyz((r) => authOf(r) === undefined && r.body.checks.flags.detail.sourceReachable, 'authRejected cleared', SEEN_WAIT_MS)
    t.equal(ficus.logs((line) => line.msg === ACCEPTED_LOG).length, 1, 'the recovery is logged')

    // Polling is back to its normal interval, not stretched by the refusals.
    const clicked = performance.now()
    await configureFlag(unleash, FLAG, onFor(['school-a']))
    const servedAt = performance.now()
    await ficus.waitForSide('school-b', '/attendance', 'legacy', SEEN_WAIT_MS)
    const seenMs = Math.round(performance.now() - servedAt)
    t.comment(`a flip after the recovery was seen ${seenMs} ms after the server served it (${Math.round(servedAt - clicked)} ms of Admin API calls)`)
    t.ok(seenMs < 10 * TEST_REFRESH_MS, `seen within 10 refresh intervals (${seenMs} ms)`)
  })
}
