// Tenant binding: a session belongs to the school it names. Handlers on another school see no
// session; legacy-bound requests learn each id's school with at most one Redis read per id, and
// requests without a session cookie cost no Redis at all; ids with no record are stripped. Redis
// commands are counted on a private server.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Teardown } from '../helpers/flask-app.ts'
import { DEFAULT_ABSENT_TTL_MS, SessionBindings } from '../../sessions/bindings.ts'
import { jsonCodec } from '../../sessions/codecs.ts'
import sessionsPlugin from '../../sessions/plugin.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { ItsdangerousSigner } from '../../sessions/signer.ts'
import { startProxy } from '../helpers/proxy-kit.ts'
import { startRedisServer } from '../helpers/redis-server.ts'

async function commandCount (redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats')
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)
  return match === null ? 0 : Number(match[1])
}

async function setUp (t: Teardown) {
  const server = await startRedisServer(t)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  const store = new RedisSessionStore({ url: server.url })
  t.teardown(() => store.close())
  await store.ready()
  const seed = async (data: Record<string, string>): Promise<string> => {
    const id = randomUUID()
    await admin.set('session:' + id, jsonCodec.encode(data), 'PX', 60_000)
    return id
  }
  return { server, admin, store, seed }
}

t.test('legacy-bound requests look each binding up once per id', async (t) => {
  const { admin, store, seed } = await setUp(t)
  const bindings = new SessionBindings({ store, codec: jsonCodec, signer: undefined, cookieName: 'session', tenantKey: 'tenant', cacheSize: 2 })
  const a = await seed({ user: 'alice', tenant: 'school-a' })
  const b = await seed({ user: 'bob', tenant: 'school-b' })
  const c = await seed({ user: 'carol', tenant: 'school-c' })
  const gets = await commandCount(admin, 'get')

  t.equal(bindings.mustStrip(undefined, 'school-b'), false, 'no Cookie header: false, synchronously')
  t.equal(bindings.mustStrip('theme=dark; sessionid=x', 'school-b'), false, 'no session cookie: false, synchronously')

  const first = bindings.mustStrip(`theme=dark; session=${a}`, 'school-b')
  t.type(first, Promise, 'a new id is looked up')
  t.equal(await first, true, 'school-a session on school-b must be stripped')
  for (let i = 0; i < 10; i++) {
    t.equal(bindings.mustStrip(`session=${a}`, 'school-b'), true, 'then answered from memory')
    t.equal(bindings.mustStrip(`session=${a}`, 'school-a'), false)
  }
  const together = await Promise.all(Array.from({ length: 5 }, () => bindings.mustStrip(`session=${b}`, 'school-b')))
  t.same(together, [false, false, false, false, false], 'concurrent first requests share one look-up')
  t.equal(bindings.lookups, 2)
  t.equal(await commandCount(admin, 'get') - gets, 2, 'Redis saw one GET per id')

  await bindings.mustStrip(`session=${c}`, 'school-c')
  t.equal(bindings.size, 2, 'the cache is bounded')
  t.type(bindings.mustStrip(`session=${a}`, 'school-b'), Promise, 'the least recently used id was evicted')

  t.equal(await bindings.legacyCookieHeader(`x=1; session=${b}; y=2`, 'school-a'), 'x=1; y=2')
  t.equal(await bindings.legacyCookieHeader(`x=1; session=${b}; y=2`, 'school-b'), `x=1; session=${b}; y=2`)
})

t.test('ids with no record are stripped and remembered briefly; records bound to no school pass and are read each time', async (t) => {
  const { admin, store, seed } = await setUp(t)
  let now = 1_000_000
  const bindings = new SessionBindings({ store, codec: jsonCodec, signer: undefined, cookieName: 'session', tenantKey: 'tenant', absentTtlMs: 5_000, now: () => now })
  const unbound = await seed({ cart: '3 items' })
  const unknown = randomUUID()
  const gets = await commandCount(admin, 'get')
  t.equal(await bindings.mustStrip(`session=${unbound}`, 'school-a'), false, 'a visitor before sign-in keeps the cookie')
  t.equal(await bindings.mustStrip(`session=${unbound}`, 'school-b'), false, 'on any school')
  t.equal(await bindings.mustStrip(`session=${unknown}`, 'school-a'), true, 'an id with no record would let legacy create one under the client\'s id')
  t.equal(bindings.mustStrip(`session=${unknown}`, 'school-a'), true, 'then answered from memory')
  t.equal(await commandCount(admin, 'get') - gets, 3)
  now += 5_001
  t.type(bindings.mustStrip(`session=${unknown}`, 'school-a'), Promise, 'and asked again once that answer is old')
  t.equal(bindings.size, 0, 'neither is a binding')
  await admin.set('session:' + unbound, jsonCodec.encode({ cart: '3 items', user: 'alice', tenant: 'school-a' }), 'PX', 60_000)
  t.equal(await bindings.mustStrip(`session=${unbound}`, 'school-b'), true, 'once signed in elsewhere, it is that school\'s')
})

t.test('with signed ids, only canonically signed cookies are looked up; the rest is stripped without a read', async (t) => {
  const { admin, store, seed } = await setUp(t)
  const signer = new ItsdangerousSigner({ secret: 'binding-secret' })
  const bindings = new SessionBindings({ store, codec: jsonCodec, signer, cookieName: 'session', tenantKey: 'tenant' })
  const a = await seed({ user: 'alice', tenant: 'school-a' })
  const gets = await commandCount(admin, 'get')
  t.equal(bindings.mustStrip(`session=${a}`, 'school-a'), true, 'an unsigned id when ids are signed')
  t.equal(bindings.mustStrip(`session=${signer.sign(a).slice(0, -1)}x`, 'school-a'), true, 'a tampered one')
  t.equal(bindings.mustStrip(`session=${signer.sign(a)}; session=${signer.sign(a)}`, 'school-a'), true, 'the cookie twice')
  t.equal(await commandCount(admin, 'get'), gets, 'without a Redis read')
  t.equal(await bindings.mustStrip(`session=${signer.sign(a)}`, 'school-b'), true)
  t.equal(bindings.mustStrip(`session=${signer.sign(a)}`, 'school-a'), false)
})

t.test('handlers: one GET to read, none when the session is not touched, another school sees nothing', async (t) => {
  const { admin, store, seed } = await setUp(t)
  const app = Fastify()
  t.teardown(() => app.close())
  // The edge decorates every request with its tenant; the plugin reads request.tenant.id by default.
  app.decorateRequest('tenant', null)
  app.addHook('onRequest', async (request) => {
    (request as unknown as { tenant: { id: string } }).tenant = { id: request.hostname.split('.')[0] ?? '' }
  })
  await app.register(sessionsPlugin, { store, codec: jsonCodec, closeStore: false })
  app.get('/me', async (request, reply) => {
    const session = await request.session.load()
    await request.session.load()
    return session === null ? reply.code(401).send() : { user: session.get('user') }
  })
  app.get('/plain', async () => ({ ok: true }))
  app.post('/rebind', async (request) => {
    const session = await request.session.load()
    session?.set('tenant', 'school-b')
    return {}
  })
  await app.ready()
  const a = await seed({ user: 'alice', tenant: 'school-a' })
  const cookie = `session=${a}`
  const count = async (): Promise<number> => await commandCount(admin, 'get') + await commandCount(admin, 'evalsha') + await commandCount(admin, 'eval')

  let before = await count()
  t.equal((await app.inject({ url: '/plain', headers: { host: 'school-a.example.org', cookie } })).statusCode, 200)
  t.equal(await count() - before, 0, 'a route that never touches the session costs no Redis command')

  before = await count()
  t.same((await app.inject({ url: '/me', headers: { host: 'school-a.example.org', cookie } })).json(), { user: 'alice' })
  t.equal(await count() - before, 1, 'reading costs one command, however often load() is called')

  t.equal((await app.inject({ url: '/me', headers: { host: 'school-b.example.org', cookie } })).statusCode, 401, 'school-a session on school-b: no session')
  t.equal(app.sessionBindings.mustStrip(cookie, 'school-b'), true, 'the binding a handler saw serves legacy-bound requests')

  const rebind = await app.inject({ method: 'POST', url: '/rebind', headers: { host: 'school-a.example.org', cookie } })
  t.equal(rebind.statusCode, 500)
  t.equal(rebind.json().code, 'FICUS_ERR_SESSION_TENANT_KEY_READONLY')
  t.equal(JSON.parse(await admin.get('session:' + a) ?? '{}').tenant, 'school-a')
})

t.test('through the edge: legacy-bound requests cost at most one Redis read per new session id', async (t) => {
  const { server, admin, seed } = await setUp(t)
  const proxy = await startProxy(t, { env: { REDIS_URL: server.url, BASE_DOMAIN: 'example.org' }, withSessions: true })
  const own = await Promise.all(Array.from({ length: 5 }, () => seed({ user: 'alice', tenant: 'school-a' })))
  const foreign = await Promise.all(Array.from({ length: 3 }, () => seed({ user: 'bob', tenant: 'school-b' })))
  const unknown = Array.from({ length: 3 }, () => randomUUID())
  const REPEATS = 10
  const gets = await commandCount(admin, 'get')
  const started = Date.now()
  for (const id of [...own, ...foreign, ...unknown]) {
    // The first requests of an id arrive together: they share one read.
    await Promise.all(Array.from({ length: REPEATS }, async () => {
      const res = await proxy.send({ path: '/page', host: 'school-a.example.org', headers: { cookie: `theme=dark; session=${id}` } })
      if (res.statusCode !== 200) throw new Error(`legacy-bound request answered ${res.statusCode}`)
    }))
  }
  await proxy.send({ path: '/page', host: 'school-a.example.org', headers: { cookie: 'theme=dark' } })
  const reads = await commandCount(admin, 'get') - gets
  // An id with no record is remembered for DEFAULT_ABSENT_TTL_MS; a slow machine may need a second read.
  const absentWindows = 1 + Math.floor((Date.now() - started) / DEFAULT_ABSENT_TTL_MS)
  t.ok(reads >= own.length + foreign.length + unknown.length && reads <= own.length + foreign.length + unknown.length * absentWindows,
    `${reads} Redis GETs for ${(own.length + foreign.length + unknown.length) * REPEATS + 1} legacy-bound requests with ${own.length + foreign.length + unknown.length} session ids`)

  const byCookie = new Map<string, number>()
  for (const request of proxy.legacy.requests) {
    const cookie = String(request.headers.cookie)
    byCookie.set(cookie, (byCookie.get(cookie) ?? 0) + 1)
  }
  for (const id of own) t.equal(byCookie.get(`theme=dark; session=${id}`), REPEATS, 'own school: the cookie passes')
  t.equal(byCookie.get('theme=dark'), (foreign.length + unknown.length) * REPEATS + 1, 'another school\'s and unknown ids: stripped, the rest kept')
})

t.test('the bare domain is no school: only a session bound to none reaches legacy there', async (t) => {
  const { server, seed } = await setUp(t)
  const proxy = await startProxy(t, { env: { REDIS_URL: server.url, BASE_DOMAIN: 'example.org', BARE_DOMAIN: 'legacy' }, withSessions: true })
  const bound = await seed({ user: 'alice', tenant: 'school-a' })
  const visitor = await seed({ cart: '1' })
  for (const [id, expected] of [[bound, 'lang=en'], [visitor, `lang=en; session=${visitor}`], [randomUUID(), 'lang=en']] as const) {
    const res = await proxy.send({ path: '/', host: 'example.org', headers: { cookie: `lang=en; session=${id}` } })
    t.equal(res.statusCode, 200)
    t.equal(proxy.legacy.requests.at(-1)?.headers.cookie, expected)
  }
})
