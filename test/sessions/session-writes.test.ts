// How a handler's changes are written: only the keys it set or deleted are re-applied over what
// others wrote; a session logged out meanwhile is not brought back; TTL kept or reset as configured.
// The embedded memory store and Redis follow the same rules.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import { jsonCodec } from '../../sessions/codecs.ts'
import { MemorySessionStore } from '../../sessions/memory-store.ts'
import sessionsPlugin from '../../sessions/plugin.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { RequestSession } from '../../sessions/session.ts'
import type { SessionRuntime } from '../../sessions/session.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'

function runtimeFor (store: SessionRuntime['store'], writeRetries = 8): SessionRuntime {
  return { store, codec: jsonCodec, signer: undefined, cookieName: 'session', tenantKey: 'tenant', writeRetries }
}

t.test('memory store: re-applies only the changed keys over a concurrent write', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a', keep: 1, drop: 2, mine: 'old' }))
  const session = await new RequestSession(runtimeFor(store), `session=${id}`, 'school-a').load()
  if (session === null) throw new Error('no session')
  session.set('mine', 'new')
  session.delete('drop')
  t.equal(session.get('drop'), undefined)
  t.ok(session.modified)
  // Someone else writes meanwhile.
  store.put(id, jsonCodec.encode({ user: 'alice', tenant: 'school-a', keep: 10, drop: 2, mine: 'theirs', added: true }))
  await session.save()
  t.equal(session.writeAttempts, 2)
  t.notOk(session.modified)
  t.same(jsonCodec.decode((await store.get(id)) ?? Buffer.alloc(0)),
    { user: 'alice', tenant: 'school-a', keep: 10, mine: 'new', added: true })
})

t.test('memory store: a session deleted meanwhile is not brought back', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a' }))
  const session = await new RequestSession(runtimeFor(store), `session=${id}`, 'school-a').load()
  session?.set('x', 1)
  store.delete(id)
  await session?.save()
  t.equal(session?.ended, true)
  t.equal(await store.get(id), undefined)
})

t.test('gives up with a 503 after the configured retries', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ tenant: 'school-a', n: 0 }))
  const session = await new RequestSession(runtimeFor(store, 2), `session=${id}`, 'school-a').load()
  session?.set('x', 1)
  let n = 0
  const original = store.compareAndSet.bind(store)
  // Another writer that always gets in first.
  store.compareAndSet = async (sid, expected, next) => {
    store.put(id, jsonCodec.encode({ tenant: 'school-a', n: ++n }))
    return await original(sid, expected, next)
  }
  await t.rejects(session?.save() ?? Promise.resolve(), { code: 'FICUS_ERR_SESSION_CONFLICT', statusCode: 503 })
  t.equal(n, 3, 'one attempt and two retries')
})

t.test('memory store behind the plugin: the embedded default', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a' }), 60_000)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionsPlugin, { store, codec: jsonCodec, tenantOf: (r) => r.hostname.split('.')[0] })
  app.post('/visit', async (request, reply) => {
    const session = await request.session.load()
    if (session === null) return reply.code(401).send()
    session.set('visits', ((session.get('visits') as number | undefined) ?? 0) + 1)
    return { visits: session.get('visits') }
  })
  await app.ready()
  const headers = { host: 'school-a.example.org', cookie: `session=${id}` }
  t.same((await app.inject({ method: 'POST', url: '/visit', headers })).json(), { visits: 1 })
  t.same((await app.inject({ method: 'POST', url: '/visit', headers })).json(), { visits: 2 })
  t.ok(store.pttl(id) > 0 && store.pttl(id) <= 60_000, 'TTL kept')
  t.equal((await app.inject({ method: 'POST', url: '/visit', headers: { ...headers, host: 'school-b.example.org' } })).statusCode, 401)
})

t.test('redis store: TTL kept by default, reset when SESSION_TTL_SECONDS is set', async (t) => {
  const keyPrefix = `ficus-test:writes:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const keep = new RedisSessionStore({ url: REDIS_URL, keyPrefix })
  const reset = new RedisSessionStore({ url: REDIS_URL, keyPrefix, ttlSeconds: 900 })
  t.teardown(() => keep.close())
  t.teardown(() => reset.close())
  const bytes = jsonCodec.encode({ tenant: 'school-a' })
  const id = randomUUID()
  await redis.set(keyPrefix + id, bytes, 'PX', 123_456)
  t.equal((await keep.compareAndSet(id, bytes, jsonCodec.encode({ tenant: 'school-a', a: 1 }))).outcome, 'written')
  const kept = await redis.pttl(keyPrefix + id)
  t.ok(kept > 100_000 && kept <= 123_456, `kept (${kept} ms)`)
  const current = (await redis.getBuffer(keyPrefix + id)) ?? Buffer.alloc(0)
  t.equal((await reset.compareAndSet(id, current, bytes)).outcome, 'written')
  const renewed = await redis.pttl(keyPrefix + id)
  t.ok(renewed > 123_456 && renewed <= 900_000, `reset (${renewed} ms)`)
  t.equal((await keep.compareAndSet(id, jsonCodec.encode({}), bytes)).outcome, 'changed')
  t.equal((await keep.compareAndSet(randomUUID(), bytes, bytes)).outcome, 'gone', 'never creates a record')
  const persistent = randomUUID()
  await redis.set(keyPrefix + persistent, bytes)
  await keep.compareAndSet(persistent, bytes, jsonCodec.encode({ tenant: 'school-a', b: 2 }))
  t.equal(await redis.pttl(keyPrefix + persistent), -1, 'a record without expiry stays without')
})

t.test('update(change): the change runs again on the fresh record when another writer got in first', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a', count: 1 }))
  const session = await new RequestSession(runtimeFor(store), `session=${id}`, 'school-a').load()
  if (session === null) throw new Error('no session')
  store.put(id, jsonCodec.encode({ user: 'alice', tenant: 'school-a', count: 10, theirs: true }))
  const seen: unknown[] = []
  const result = await session.update((draft) => {
    const count = draft.get('count') as number
    seen.push(count)
    draft.set('count', count + 1)
    return count + 1
  })
  t.same(seen, [1, 10], 'ran on the stale copy, then on what the store holds')
  t.equal(result, 11)
  t.same(jsonCodec.decode((await store.get(id)) ?? Buffer.alloc(0)), { user: 'alice', tenant: 'school-a', count: 11, theirs: true })
  t.equal(session.get('count'), 11, 'the session shows what was written')
})

t.test('update(change): refused when the session ended, when the change is async, and for the school key', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a' }))
  const session = await new RequestSession(runtimeFor(store), `session=${id}`, 'school-a').load()
  if (session === null) throw new Error('no session')
  await t.rejects(session.update(async (draft) => { draft.set('x', 1) }), TypeError)
  await t.rejects(session.update((draft) => { draft.set('tenant', 'school-b') }), { code: 'FICUS_ERR_SESSION_TENANT_KEY_READONLY' })
  t.same(jsonCodec.decode((await store.get(id)) ?? Buffer.alloc(0)), { user: 'alice', tenant: 'school-a' }, 'nothing written')
  store.delete(id)
  await t.rejects(session.update((draft) => { draft.set('x', 1) }), { code: 'FICUS_ERR_SESSION_ENDED', statusCode: 401 })
  t.equal(await store.get(id), undefined, 'a signed-out session is not brought back')
  t.equal(await new RequestSession(runtimeFor(store), `session=${id}`, 'school-a').update(() => 1), null, 'no session: null')
})

t.test('a change saved after the handler, on a session signed out meanwhile, is not answered 2xx', async (t) => {
  const store = new MemorySessionStore()
  const id = store.create(jsonCodec.encode({ user: 'alice', tenant: 'school-a' }))
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionsPlugin, { store, codec: jsonCodec, tenantOf: (r) => r.hostname.split('.')[0] })
  app.post('/late', async (request) => {
    const session = await request.session.load()
    session?.set('x', 1)
    store.delete(id)
    return { ok: true }
  })
  await app.ready()
  const res = await app.inject({ method: 'POST', url: '/late', headers: { host: 'school-a.example.org', cookie: `session=${id}` } })
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'FICUS_ERR_SESSION_ENDED')
})

t.test('redis, two writers in generated interleavings: every increment made by update(change) survives', async (t) => {
  const keyPrefix = `ficus-test:update:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  // Two stores are two processes: their writes do not take turns, they race by compare-and-set.
  const stores = [new RedisSessionStore({ url: REDIS_URL, keyPrefix }), new RedisSessionStore({ url: REDIS_URL, keyPrefix })]
  for (const store of stores) t.teardown(() => store.close())
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: 1 }), fc.nat({ max: 5 })), { minLength: 2, maxLength: 30 }), async (plan) => {
    const id = randomUUID()
    await redis.set(keyPrefix + id, jsonCodec.encode({ tenant: 'school-a', n: 0 }), 'PX', 60_000)
    await Promise.all(plan.map(async ([which, delay], i) => {
      const session = await new RequestSession(runtimeFor(stores[which] ?? stores[0] as RedisSessionStore, 1000), `session=${id}`, 'school-a').load()
      if (session === null) throw new Error('no session')
      await new Promise((resolve) => setTimeout(resolve, delay))
      await session.update((draft) => {
        draft.set('n', (draft.get('n') as number) + 1)
        draft.set(`w${i}`, i)
      })
    }))
    const data = jsonCodec.decode((await redis.getBuffer(keyPrefix + id)) ?? Buffer.alloc(0))
    if (data.n !== plan.length) throw new Error(`${plan.length} increments, ${String(data.n)} left`)
    for (let i = 0; i < plan.length; i++) if (data[`w${i}`] !== i) throw new Error(`w${i} lost`)
  }), { numRuns: 25 })
  t.pass('25 generated interleavings')
})
