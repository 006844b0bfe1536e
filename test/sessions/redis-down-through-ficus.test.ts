// Redis stops while ficus serves: migrated routes that need the session answer 503 fast, routes
// forwarded to legacy keep working, and sessions come back by themselves when Redis does.
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { me } from '../../new-routes/me/index.ts'
import { jsonCodec } from '../../sessions/codecs.ts'
import { startRedisServer } from '../helpers/redis-server.ts'
import { flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

// The bound for a session route's answer while Redis is down.
const FAST_FAILURE_MS = 500

t.test('Redis down: /me answers 503 fast, legacy routes unaffected; Redis back: /me works again', async (t) => {
  const redisServer = await startRedisServer(t)
  const id = randomUUID()
  async function storeSession (): Promise<void> {
    const redis = new Redis(redisServer.url)
    await redis.set('session:' + id, jsonCodec.encode({ user: 'alice', tenant: 'school-a' }), 'PX', 60_000)
    redis.disconnect()
  }
  await storeSession()
  const proxy = await startProxy(t, {
    env: { REDIS_URL: redisServer.url, BASE_DOMAIN: 'localhost' },
    routes: [me],
    flags: flagsOnFor(['school-a'], 'me'),
    withSessions: true
  })
  const cookie = `session=${id}`
  const get = async (path: string, withCookie: boolean) => {
    const started = performance.now()
    const res = await request(proxy.origin + path, { headers: { host: 'school-a.localhost', ...(withCookie ? { cookie } : {}) } })
    await res.body.text()
    return { status: res.statusCode, servedBy: res.headers['x-served-by'], ms: performance.now() - started }
  }

  t.equal((await get('/me', true)).status, 200, 'the session is read while Redis is up')
  t.equal((await get('/reports', true)).status, 200, 'a legacy page with the cookie passes (its binding is now known)')

  await redisServer.stop()
  const down = await get('/me', true)
  t.equal(down.status, 503, 'a migrated route that needs the session answers 503')
  t.ok(down.ms < FAST_FAILURE_MS, `and answers fast (${down.ms.toFixed(0)} ms)`)
  t.comment(`/me answered 503 in ${down.ms.toFixed(1)} ms with Redis down`)
  const legacyWithCookie = await get('/reports', true)
  t.equal(legacyWithCookie.status, 200, 'legacy pages keep working, cookie included')
  t.equal(legacyWithCookie.servedBy, 'legacy')
  t.equal((await get('/timetable', false)).status, 200, 'legacy pages without a cookie never needed Redis')

  await redisServer.start()
  await storeSession()
  const deadline = Date.now() + 10_000
  let back = await get('/me', true)
  while (back.status !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    back = await get('/me', true)
  }
  t.equal(back.status, 200, 'sessions work again once Redis is back, without a restart')
})
