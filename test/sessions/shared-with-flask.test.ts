// One login shared with a real Flask + Flask-Session app through Redis, with plain and with
// signed session ids: sign in on Flask → a handler sees the user; the handler writes → Flask sees
// it; logout on Flask → no session; another school's cookie → no session, and stripped for legacy.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { flaskSessionCodec } from '../../sessions/codecs.ts'
import sessionsPlugin from '../../sessions/plugin.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { ItsdangerousSigner } from '../../sessions/signer.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import type { Teardown } from '../helpers/flask-app.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'shared-with-flask-secret'
const LIFETIME_SECONDS = 1800
const SCHOOL_A = 'school-a.example.org'
const SCHOOL_B = 'school-b.example.org'

async function buildApp (t: Teardown, keyPrefix: string, signed: boolean): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionsPlugin, {
    store: new RedisSessionStore({ url: REDIS_URL, keyPrefix }),
    codec: flaskSessionCodec,
    ...(signed ? { signer: new ItsdangerousSigner({ secret: SECRET }) } : {}),
    tenantOf: (request) => request.hostname.split('.')[0]
  })
  app.get('/me', async (request, reply) => {
    const session = await request.session.load()
    if (session === null) return reply.code(401).send({ error: 'no session' })
    return { user: session.get('user'), school: session.tenantId }
  })
  app.put('/me/preferences', async (request, reply) => {
    const session = await request.session.load()
    if (session === null) return reply.code(401).send({ error: 'no session' })
    const body = request.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return reply.code(422).send({ error: 'object expected' })
    const current = session.get('preferences')
    const merged = { ...(current !== null && typeof current === 'object' && !Array.isArray(current) ? current : {}), ...body }
    session.set('preferences', merged)
    return { preferences: merged }
  })
  await app.ready()
  return app
}

for (const signed of [false, true]) {
  t.test(signed ? 'with SESSION_USE_SIGNER=True' : 'with plain session ids', async (t) => {
    const keyPrefix = `ficus-test:shared:${randomUUID()}:`
    const redis = new Redis(REDIS_URL)
    t.teardown(async () => {
      const keys = await redis.keys(keyPrefix + '*')
      if (keys.length > 0) await redis.del(...keys)
      redis.disconnect()
    })
    const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: signed, secret: SECRET, lifetimeSeconds: LIFETIME_SECONDS })
    const app = await buildApp(t, keyPrefix, signed)

    const login = await flask.get('/login?user=alice', { host: SCHOOL_A })
    t.equal(login.status, 200)
    const cookie = login.setCookies.find((c) => c.startsWith('session='))
    if (cookie === undefined) throw new Error('Flask set no session cookie')
    const id = cookie.slice('session='.length).split('.')[0] ?? ''
    t.equal((await redis.exists(keyPrefix + id)), 1, 'Flask-Session stored the record under prefix + id')
    t.equal(cookie.includes('.'), signed, signed ? 'the cookie is signed' : 'the cookie is the bare id')

    t.test('a handler sees the user Flask signed in', async (t) => {
      const res = await app.inject({ url: '/me', headers: { host: SCHOOL_A, cookie } })
      t.equal(res.statusCode, 200)
      t.same(res.json(), { user: 'alice', school: 'school-a' })
    })

    t.test('what the handler writes, the next Flask page shows, with the TTL kept', async (t) => {
      const before = await redis.pttl(keyPrefix + id)
      const res = await app.inject({ method: 'PUT', url: '/me/preferences', headers: { host: SCHOOL_A, cookie }, payload: { theme: 'dark' } })
      t.equal(res.statusCode, 200)
      const after = await redis.pttl(keyPrefix + id)
      t.ok(after > 0 && after <= before, `TTL kept (${before} → ${after} ms)`)
      const page = await flask.get('/session', { host: SCHOOL_A, cookie })
      t.same(page.body.session, { _permanent: true, user: 'alice', tenant: 'school-a', preferences: { theme: 'dark' } })
      t.equal(page.body.signed_in, true)
      const second = await app.inject({ method: 'PUT', url: '/me/preferences', headers: { host: SCHOOL_A, cookie }, payload: { lang: 'fr' } })
      t.same(second.json(), { preferences: { theme: 'dark', lang: 'fr' } })
    })

    t.test('a value Flask sets after ficus wrote is seen by the handler', async (t) => {
      await flask.get('/set?key=user&value=bob', { host: SCHOOL_A, cookie })
      const res = await app.inject({ url: '/me', headers: { host: SCHOOL_A, cookie } })
      t.same(res.json(), { user: 'bob', school: 'school-a' })
    })

    t.test('the school-a cookie on school-b: no session for handlers, stripped for legacy', async (t) => {
      const res = await app.inject({ url: '/me', headers: { host: SCHOOL_B, cookie } })
      t.equal(res.statusCode, 401)
      const header = `theme=light; ${cookie}; lang=fr`
      t.equal(await app.sessionBindings.legacyCookieHeader(header, 'school-b'), 'theme=light; lang=fr')
      t.equal(app.sessionBindings.legacyCookieHeader(header, 'school-a'), header, 'kept, synchronously, on its own school')
      const forwarded = await app.sessionBindings.legacyCookieHeader(cookie, 'school-b')
      t.equal(forwarded, undefined, 'nothing left of a header that held only the session cookie')
      const legacy = await flask.get('/session', { host: SCHOOL_B })
      t.equal(legacy.body.signed_in, false, 'Flask on school-b sees no session without the cookie')
    })

    if (signed) {
      t.test('a tampered signed cookie is no session, and is stripped for legacy without a look-up', async (t) => {
        const tampered = cookie.slice(0, -2) + (cookie.endsWith('A') ? 'BB' : 'AA')
        const res = await app.inject({ url: '/me', headers: { host: SCHOOL_A, cookie: tampered } })
        t.equal(res.statusCode, 401)
        const unsigned = `session=${id}`
        t.equal((await app.inject({ url: '/me', headers: { host: SCHOOL_A, cookie: unsigned } })).statusCode, 401, 'the bare id is refused too')
        t.equal(app.sessionBindings.mustStrip(tampered, 'school-a'), true, 'synchronously')
        const page = await flask.get('/session', { host: SCHOOL_A, cookie: tampered })
        t.equal(page.body.signed_in, false, 'Flask refuses it too')
      })
    } else {
      t.test('an id the client made up is no session, and nothing is created for it', async (t) => {
        const madeUp = randomUUID()
        const res = await app.inject({ method: 'PUT', url: '/me/preferences', headers: { host: SCHOOL_A, cookie: `session=${madeUp}` }, payload: { a: 1 } })
        t.equal(res.statusCode, 401)
        t.equal(await redis.exists(keyPrefix + madeUp), 0)
      })
    }

    t.test('after logout on Flask, the handler sees no session', async (t) => {
      await flask.get('/logout', { host: SCHOOL_A, cookie })
      t.equal(await redis.exists(keyPrefix + id), 0, 'Flask-Session deleted the record')
      const res = await app.inject({ url: '/me', headers: { host: SCHOOL_A, cookie } })
      t.equal(res.statusCode, 401)
    })
  })
}
