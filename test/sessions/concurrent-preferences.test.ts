// Concurrent PUT /me/preferences of distinct keys by 20 clients of one session, through two ficus
// processes' worth of edges (each its own Redis client, so their writes race by compare-and-set),
// in generated orders and timings with values of every JSON type: every key answered 2xx is in
// the record afterwards, read by the real Flask + Flask-Session legacy as the Python type the JSON
// value has (int, float, bool, None, str). Bodies are validated without type coercion.
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { CsrfTokens } from '../../access/csrf.ts'
import { me, updatePreferences } from '../../new-routes/me/index.ts'
import { startFlaskApp, type FlaskApp } from '../helpers/flask-app.ts'
import { flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SCHOOL_A = 'school-a.example.org'
const CLIENTS = 20
const CSRF_SECRET = 'concurrent-preferences-csrf'
const csrfTokens = new CsrfTokens({ secret: CSRF_SECRET, timeLimitSeconds: 3600 })

/** Signs alice in on the legacy and gives her session a CSRF token, as a legacy page with a form would. */
async function signIn (flask: FlaskApp): Promise<{ cookie: string, write: Record<string, string> }> {
  const login = await flask.get('/login?user=alice', { host: SCHOOL_A })
  const cookie = login.setCookies.find((c) => c.startsWith('session='))
  if (cookie === undefined) throw new Error('Flask set no session cookie')
  const sessionToken = CsrfTokens.sessionValue()
  await flask.get(`/set?key=csrf_token&value=${sessionToken}`, { host: SCHOOL_A, cookie })
  // What a migrated route needs of an unsafe request from a legacy page (see test/access/).
  return { cookie, write: { origin: `http://${SCHOOL_A}`, 'x-csrftoken': csrfTokens.sign(sessionToken) } }
}

type Json = string | number | boolean | null

function pythonType (value: Json): string {
  if (value === null) return 'NoneType'
  if (typeof value === 'boolean') return 'bool'
  if (typeof value === 'string') return 'str'
  return Number.isInteger(value) ? 'int' : 'float'
}

t.test('20 concurrent writers of distinct keys: every 2xx key survives, in its type, as Flask reads it', async (t) => {
  const keyPrefix = `ficus-test:prefs:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix })
  const edge = async (): Promise<string> => (await startProxy(t, {
    env: { LEGACY_URL: flask.url, BASE_DOMAIN: 'example.org', REDIS_URL, SESSION_CODEC: 'flask-session', SESSION_KEY_PREFIX: keyPrefix, CSRF_SECRET },
    routes: [me, updatePreferences],
    flags: flagsOnFor(['school-a'], 'me'),
    withSessions: true
  })).origin
  const origins = [await edge(), await edge()]

  const value: fc.Arbitrary<Json> = fc.oneof(
    fc.integer(), fc.constantFrom(0, 3, -1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER), fc.boolean(), fc.constant(null),
    fc.string({ maxLength: 8 }), fc.constantFrom('3', 'true', 'null', ''),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e9, max: 1e9 }).filter((n) => !Number.isInteger(n)))
  const writers = fc.array(fc.tuple(value, fc.nat({ max: 15 }), fc.nat({ max: 1 })), { minLength: CLIENTS, maxLength: CLIENTS })

  let answered2xx = 0
  let conflicts = 0
  await fc.assert(fc.asyncProperty(writers, async (plan) => {
    const { cookie, write } = await signIn(flask)
    const results = await Promise.all(plan.map(async ([v, delay, edgeIndex], i) => {
      await new Promise((resolve) => setTimeout(resolve, delay))
      const res = await request(`${origins[edgeIndex] ?? ''}/me/preferences`, {
        method: 'PUT',
        headers: { host: SCHOOL_A, cookie, ...write, 'content-type': 'application/json' },
        body: JSON.stringify({ [`k${i}`]: v })
      })
      const body = await res.body.json() as { error?: { code?: string } }
      return { key: `k${i}`, value: v, status: res.statusCode, code: body.error?.code }
    }))
    const types = (await flask.get('/types', { host: SCHOOL_A, cookie })).body as unknown as { types: { preferences?: Record<string, string>, user?: string } }
    const page = await flask.get('/session', { host: SCHOOL_A, cookie })
    const stored = (page.body.session.preferences ?? {}) as Record<string, Json>
    if (page.body.session.user !== 'alice') throw new Error('legacy lost the user')
    for (const result of results) {
      if (result.status >= 200 && result.status < 300) {
        answered2xx++
        if (!Object.hasOwn(stored, result.key)) throw new Error(`${result.key} was answered ${result.status} and is gone`)
        if (stored[result.key] !== result.value) throw new Error(`${result.key}: wrote ${JSON.stringify(result.value)}, legacy reads ${JSON.stringify(stored[result.key])}`)
        const type = types.types.preferences?.[result.key]
        if (type !== pythonType(result.value)) throw new Error(`${result.key}: ${JSON.stringify(result.value)} is a ${String(type)} in Python, not ${pythonType(result.value)}`)
      } else if (result.status === 503 && result.code === 'FICUS_ERR_SESSION_CONFLICT') {
        conflicts++
      } else {
        throw new Error(`${result.key}: answered ${result.status} ${String(result.code)}`)
      }
    }
  }), { numRuns: 4, seed: 20 })
  t.comment(`${answered2xx} writes answered 2xx, ${conflicts} refused as conflicts`)
  t.ok(answered2xx >= CLIENTS * 4 * 0.9, `${answered2xx} of ${CLIENTS * 4} concurrent writes answered 2xx, none lost`)
})

t.test('bodies are not coerced: a mismatching type is 422 naming the field, a string stays a string', async (t) => {
  const keyPrefix = `ficus-test:coerce:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix })
  const proxy = await startProxy(t, {
    env: { LEGACY_URL: flask.url, BASE_DOMAIN: 'example.org', REDIS_URL, SESSION_CODEC: 'flask-session', SESSION_KEY_PREFIX: keyPrefix, CSRF_SECRET },
    routes: [me, updatePreferences],
    flags: flagsOnFor(['school-a'], 'me'),
    withSessions: true
  })
  const { cookie, write } = await signIn(flask)
  const put = async (body: string): Promise<{ status: number, json: { error?: { code: string, message: string } } }> => {
    const res = await request(`${proxy.origin}/me/preferences`, { method: 'PUT', headers: { host: SCHOOL_A, cookie, ...write, 'content-type': 'application/json' }, body })
    return { status: res.statusCode, json: await res.body.json() as { error?: { code: string, message: string } } }
  }
  for (const body of ['{"theme":[1]}', '{"theme":["dark"]}', '{"theme":{"a":1}}']) {
    const res = await put(body)
    t.equal(res.status, 422, body)
    t.equal(res.json.error?.code, 'FICUS_ERR_VALIDATION')
    t.match(res.json.error?.message, /body\/theme/, 'the message names the field')
  }
  t.equal((await put('{"n":"3","b":"true","z":"null","i":3,"t":true,"x":null,"f":1.5}')).status, 200)
  const types = (await flask.get('/types', { host: SCHOOL_A, cookie })).body as unknown as { types: { preferences: Record<string, string> } }
  t.same(types.types.preferences, { n: 'str', b: 'str', z: 'str', i: 'int', t: 'bool', x: 'NoneType', f: 'float' }, 'Flask reads each value in the type it was sent')
})
