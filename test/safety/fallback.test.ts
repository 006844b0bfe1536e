// Safe fallback (README "Safe fallback"): a new handler that throws, answers 5xx or misses its
// deadline on GET/HEAD/OPTIONS, before any byte is sent, is replaced by legacy's answer and
// counted; a POST (or any other method) is never replayed: the client gets the error.
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { migratedRoute, type MigratedRoute } from '../../core/route.ts'
import { flagsFor, startSafetyKit, waitFor, type SafetyKit } from '../helpers/safety-kit.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import type { Test } from 'tap'
import { SessionErrors } from '../../sessions/errors.ts'

const ROUTE = 'grades.page'
const FLAG = 'grades-page'
const SLOW_HANDLER_MS = 1_000
const ROUTE_TIMEOUT_MS = 150

type Behaviour = 'throw' | 'status-503' | 'slow' | 'ok' | 'not-found' | 'documented-503'

function gradesRoute (behaviour: { current: Behaviour }, calls: string[], extra: Partial<MigratedRoute> = {}): MigratedRoute {
  return migratedRoute({
    name: ROUTE,
    method: ['GET', 'POST'],
    url: '/grades',
    flag: FLAG,
    access: 'public',
    // The safety nets are under test here, not who may call: no sign-in, no CSRF token.
    csrf: false,
    timeoutMs: ROUTE_TIMEOUT_MS,
    ...extra,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      calls.push(request.method)
      reply.header('x-new-only', 'must not leak into the fallback')
      switch (behaviour.current) {
        case 'throw': throw new Error('database exploded')
        case 'status-503': return reply.code(503).send({ error: 'busy' })
        case 'not-found': return reply.code(404).send({ error: 'no such class' })
        case 'documented-503': throw SessionErrors.FICUS_ERR_SESSION_STORE_UNAVAILABLE()
        case 'slow':
          await new Promise((resolve) => setTimeout(resolve, SLOW_HANDLER_MS))
          return reply.send({ servedBy: 'new', late: true })
        default: return reply.send({ servedBy: 'new' })
      }
    }
  })
}

async function fallbacks (kit: SafetyKit, reason: string): Promise<number | undefined> {
  return sampleValue(parsePrometheusText(await kit.metrics.text()), 'ficus_fallbacks_total', { route: ROUTE, reason })
}

async function setup (t: Test, behaviour: Behaviour, extra: Partial<MigratedRoute> = {}): Promise<{ kit: SafetyKit, calls: string[], behaviour: { current: Behaviour } }> {
  const state = { current: behaviour }
  const calls: string[] = []
  const kit = await startSafetyKit(t, { routes: [gradesRoute(state, calls, extra)], flags: flagsFor({ [FLAG]: ['school-a'] }) })
  return { kit, calls, behaviour: state }
}

t.test('a handler that throws on GET: the client gets the legacy answer and the fallback counter moves', async (t) => {
  const { kit, calls } = await setup(t, 'throw')
  t.equal(await fallbacks(kit, 'error'), 0, 'declared at zero before any fallback')
  const answer = await kit.request('school-a', '/grades?term=2')
  t.equal(answer.status, 200)
  t.equal(answer.text, 'legacy GET /grades?term=2')
  t.equal(answer.headers['x-served-by'], 'legacy')
  t.equal(answer.headers['x-new-only'], undefined, 'nothing the new handler set reaches the client')
  t.same(calls, ['GET'])
  t.equal(kit.legacy.sole().method, 'GET')
  t.equal(await fallbacks(kit, 'error'), 1)
  const log = kit.logs.find((line) => line.msg.startsWith('new handler failed'))
  t.match(log, { route: ROUTE, tenant: 'school-a', reason: 'error' })
  const access = kit.logs.find((line) => line.msg === 'request')
  t.match(access, { backend: 'fallback', status: 200, route: ROUTE })
})

t.test('a handler that throws on POST: the client gets 5xx and legacy receives nothing', async (t) => {
  const { kit, calls } = await setup(t, 'throw')
  const answer = await kit.request('school-a', '/grades', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: '{"grade":"A"}' })
  t.equal(answer.status, 500)
  t.match(JSON.parse(answer.text), { error: { code: 'FICUS_ERR_INTERNAL' } })
  t.same(calls, ['POST'])
  t.equal(kit.legacy.requests.length, 0, 'legacy received nothing')
  t.equal(await fallbacks(kit, 'error'), 0)
})

t.test('a 5xx answer on GET falls back; on POST it reaches the client', async (t) => {
  const { kit } = await setup(t, 'status-503')
  const get = await kit.request('school-a', '/grades')
  t.equal(get.text, 'legacy GET /grades')
  t.equal(await fallbacks(kit, 'status'), 1)
  const post = await kit.request('school-a', '/grades', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
  t.equal(post.status, 503)
  t.equal(post.text, '{"error":"busy"}')
  t.equal(kit.legacy.requests.length, 1, 'only the GET went to legacy')
})

t.test('a 4xx is the handler\'s answer, not a failure', async (t) => {
  const { kit } = await setup(t, 'not-found')
  const answer = await kit.request('school-a', '/grades')
  t.equal(answer.status, 404)
  t.equal(answer.headers['x-served-by'], 'new')
  t.equal(kit.legacy.requests.length, 0)
})

t.test('a documented ficus error (the session store is down) is the answer, not a handler failure', async (t) => {
  const { kit } = await setup(t, 'documented-503')
  const answer = await kit.request('school-a', '/grades', { headers: { accept: 'application/json' } })
  t.equal(answer.status, 503)
  t.match(JSON.parse(answer.text), { error: { code: 'FICUS_ERR_SESSION_STORE_UNAVAILABLE' } })
  t.equal(kit.legacy.requests.length, 0)
  t.equal(await fallbacks(kit, 'status'), undefined)
})

t.test('a GET past the route deadline is served by legacy; the late answer is dropped', async (t) => {
  const { kit, behaviour } = await setup(t, 'slow')
  const answer = await kit.request('school-a', '/grades')
  t.equal(answer.status, 200)
  t.equal(answer.text, 'legacy GET /grades')
  t.equal(await fallbacks(kit, 'timeout'), 1)
  // The handler finishes after the legacy answer went out; nothing breaks, and the next request is fine.
  await new Promise((resolve) => setTimeout(resolve, SLOW_HANDLER_MS + 200))
  behaviour.current = 'ok'
  const next = await kit.request('school-a', '/grades')
  t.equal(next.headers['x-served-by'], 'new')
  t.same(JSON.parse(next.text), { servedBy: 'new' })
  t.notOk(kit.logs.some((line) => line.level >= 50), 'no error logged')
})

t.test('a GET past the deadline with legacy slower still: legacy answers, the late new answer is dropped', async (t) => {
  const { kit } = await setup(t, 'slow')
  kit.legacy.handle(async ({ res }) => {
    await new Promise((resolve) => setTimeout(resolve, SLOW_HANDLER_MS + 300))
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('legacy, slowly')
  })
  const answer = await kit.request('school-a', '/grades')
  t.equal(answer.text, 'legacy, slowly')
  t.equal(answer.headers['x-served-by'], 'legacy')
})

t.test('a POST past the deadline is not cut: only idempotent requests have one', async (t) => {
  const { kit } = await setup(t, 'slow')
  const answer = await kit.request('school-a', '/grades', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
  t.same(JSON.parse(answer.text), { servedBy: 'new', late: true })
  t.equal(kit.legacy.requests.length, 0)
})

t.test('fallbackToLegacy: false keeps the error on the new side', async (t) => {
  const { kit } = await setup(t, 'throw', { fallbackToLegacy: false })
  const answer = await kit.request('school-a', '/grades')
  t.equal(answer.status, 500)
  t.equal(kit.legacy.requests.length, 0)
})

t.test('when legacy fails too, the client gets the legacy error', async (t) => {
  const { kit } = await setup(t, 'throw')
  await kit.legacy.close()
  const answer = await kit.request('school-a', '/grades', { headers: { accept: 'application/json' } })
  t.equal(answer.status, 502)
  t.match(answer.text, /FICUS_ERR_LEGACY_UNAVAILABLE/)
  await waitFor(() => kit.logs.some((line) => line.msg === 'request'), 2_000, 'the access log line')
})
