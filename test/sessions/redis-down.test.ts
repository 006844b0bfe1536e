// Redis stopped: session routes answer 503 fast (no offline queue), routes without the session and
// legacy-bound checks of known bindings keep working; Redis back: sessions work again, no restart.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { flaskSessionCodec } from '../../sessions/codecs.ts'
import sessionsPlugin from '../../sessions/plugin.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { RequestSession } from '../../sessions/session.ts'
import { startRedisServer } from '../helpers/redis-server.ts'

const BOUND_MS = 500
const RECOVERY_DEADLINE_MS = 10_000
const HOST = 'school-a.example.org'

t.test('fails fast while Redis is down and recovers by itself', async (t) => {
  const server = await startRedisServer(t)
  const seed = async (id: string): Promise<void> => {
    const redis = new Redis(server.url)
    await redis.set('session:' + id, flaskSessionCodec.encode({ user: 'alice', tenant: 'school-a' }), 'PX', 60_000)
    redis.disconnect()
  }
  const logs: string[] = []
  const stream = { write: (line: string) => { logs.push(line) } }
  const app = Fastify({ logger: { level: 'debug', stream } })
  t.teardown(() => app.close())
  const store = new RedisSessionStore({ url: server.url, log: app.log })
  await store.ready()
  await app.register(sessionsPlugin, { store, codec: flaskSessionCodec, tenantOf: (r) => r.hostname.split('.')[0] })
  app.get('/me', async (request, reply) => {
    const session = await request.session.load()
    return session === null ? reply.code(401).send() : { user: session.get('user') }
  })
  app.get('/plain', async () => ({ ok: true }))
  await app.ready()

  const id = randomUUID()
  await seed(id)
  const cookie = `session=${id}`
  t.equal((await app.inject({ url: '/me', headers: { host: HOST, cookie } })).statusCode, 200, 'works while Redis is up')
  const session = await new RequestSession({ store, codec: flaskSessionCodec, signer: undefined, cookieName: 'session', tenantKey: 'tenant', writeRetries: 8 }, cookie, 'school-a').load()
  t.ok(session, 'a session loaded before the outage')

  await server.stop()

  const started = performance.now()
  const down = await app.inject({ url: '/me', headers: { host: HOST, cookie } })
  const elapsed = performance.now() - started
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'FICUS_ERR_SESSION_STORE_UNAVAILABLE')
  t.ok(elapsed < BOUND_MS, `503 within ${BOUND_MS} ms (${elapsed.toFixed(0)} ms)`)
  t.notMatch(down.body, id, 'the answer does not contain the session id')

  const saveStarted = performance.now()
  session?.set('theme', 'dark')
  await t.rejects(session?.save() ?? Promise.resolve(), { code: 'FICUS_ERR_SESSION_STORE_UNAVAILABLE', statusCode: 503 })
  t.ok(performance.now() - saveStarted < BOUND_MS, 'a save fails within the bound too')

  t.equal((await app.inject({ url: '/plain', headers: { host: HOST, cookie } })).statusCode, 200, 'a route without the session is unaffected')
  t.equal(app.sessionBindings.mustStrip(cookie, 'school-a'), false, 'a known binding needs no Redis for legacy-bound requests')
  t.equal(app.sessionBindings.mustStrip('a=1', 'school-a'), false, 'no session cookie, no Redis')
  t.equal(await app.sessionBindings.mustStrip(`session=${randomUUID()}`, 'school-a'), true, 'an unknown binding cannot be cleared: stripped')

  await server.start()
  await seed(id)
  const deadline = Date.now() + RECOVERY_DEADLINE_MS
  let status = 0
  while (Date.now() < deadline) {
    status = (await app.inject({ url: '/me', headers: { host: HOST, cookie } })).statusCode
    if (status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(status, 200, 'sessions work again without a restart')
  const logged = logs.join('')
  t.match(logged, /session store redis redis:\/\/127\.0\.0\.1:\d+ unavailable/, 'the outage is logged')
  t.match(logged, /FICUS_ERR_SESSION_STORE_UNAVAILABLE/, 'and the 503s')
  t.notMatch(logged, id, 'no log line holds the session id')
})

t.test('a save that fails after the handler turns the response into a 503', async (t) => {
  const server = await startRedisServer(t)
  const redis = new Redis(server.url)
  const id = randomUUID()
  await redis.set('session:' + id, flaskSessionCodec.encode({ user: 'alice', tenant: 'school-a' }))
  redis.disconnect()
  const store = new RedisSessionStore({ url: server.url })
  await store.ready()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionsPlugin, { store, codec: flaskSessionCodec, tenantOf: (r) => r.hostname.split('.')[0] })
  app.post('/write', async (request) => {
    const session = await request.session.load()
    session?.set('n', 1)
    await server.stop()
    return { changed: true }
  })
  await app.ready()
  const res = await app.inject({ method: 'POST', url: '/write', headers: { host: HOST, cookie: `session=${id}` } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FICUS_ERR_SESSION_STORE_UNAVAILABLE')
})
