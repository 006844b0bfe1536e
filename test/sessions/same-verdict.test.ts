// One verdict for the session cookie on both sides of ficus: for generated Cookie headers (the
// session cookie of this school, of another, of a visitor before sign-in, made up or tampered,
// repeated, in odd spellings, among other cookies), the real Flask + Flask-Session legacy behind
// ficus is signed in exactly when the migrated /me sees a session, as the same user, never with
// another school's session, and never creates a record under an id the client chose.
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { me } from '../../new-routes/me/index.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'same-verdict-secret'
const RUNS = 80

for (const signed of [false, true]) {
  t.test(signed ? 'signed ids' : 'plain ids', async (t) => {
    const keyPrefix = `ficus-test:verdict:${randomUUID()}:`
    const redis = new Redis(REDIS_URL)
    t.teardown(async () => {
      const keys = await redis.keys(keyPrefix + '*')
      if (keys.length > 0) await redis.del(...keys)
      redis.disconnect()
    })
    const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: signed, secret: SECRET })
    const proxy = await startProxy(t, {
      env: {
        LEGACY_URL: flask.url,
        BASE_DOMAIN: 'example.org',
        REDIS_URL,
        SESSION_CODEC: 'flask-session',
        SESSION_KEY_PREFIX: keyPrefix,
        ...(signed ? { SESSION_SIGNER: 'itsdangerous', SESSION_SECRET: SECRET } : {})
      },
      routes: [me],
      flags: flagsOnFor(['school-a', 'school-b'], 'me'),
      withSessions: true
    })
    const cookieOf = (setCookies: string[]): string => {
      const found = setCookies.find((c) => c.startsWith('session='))
      if (found === undefined) throw new Error('Flask set no session cookie')
      return found.slice('session='.length)
    }
    const alice = cookieOf((await flask.get('/login?user=alice', { host: 'school-a.example.org' })).setCookies)
    const bob = cookieOf((await flask.get('/login?user=bob', { host: 'school-b.example.org' })).setCookies)
    const visitor = cookieOf((await flask.get('/set?key=cart&value=1', { host: 'school-a.example.org' })).setCookies)
    const madeUp = Array.from({ length: 8 }, () => randomUUID())
    const tampered = alice.slice(0, -1) + (alice.endsWith('A') ? 'B' : 'A')
    const users: Record<string, string> = { [alice]: 'alice', [bob]: 'bob' }

    const value = fc.oneof(
      { weight: 4, arbitrary: fc.constant(alice) }, { weight: 2, arbitrary: fc.constant(bob) },
      { weight: 1, arbitrary: fc.constantFrom(visitor, tampered) }, { weight: 2, arbitrary: fc.constantFrom(...madeUp) })
    const spelling = fc.oneof(
      { weight: 5, arbitrary: fc.constant((v: string) => `session=${v}`) },
      { weight: 3, arbitrary: fc.constantFrom((v: string) => `session = ${v}`, (v: string) => `Session=${v}`, (v: string) => `session="${v}"`, (v: string) => `x=1, session=${v}`, (v: string) => `session=${v} `) })
    const sessionPiece = fc.tuple(spelling, value).map(([spell, v]) => spell(v))
    const other = fc.constantFrom('theme=dark', 'lang=en', 'q="a; b"', 'sessionid=1')
    const header = fc.tuple(fc.array(other, { maxLength: 2 }), fc.array(sessionPiece, { minLength: 1, maxLength: 2 }), fc.array(other, { maxLength: 2 }))
      .map(([before, sessions, after]) => [...before, ...sessions, ...after].join('; '))
    const school = fc.oneof({ weight: 3, arbitrary: fc.constant('school-a') }, { weight: 2, arbitrary: fc.constant('school-b') })

    let signedIn = 0
    await fc.assert(fc.asyncProperty(school, header, async (tenant, cookie) => {
      const host = `${tenant}.example.org`
      // /set writes the session: a forwarded made-up id would become a record (session fixation).
      const legacyRes = await request(`${proxy.origin}/set?key=probe&value=1`, { headers: { host, cookie } })
      const legacy = await legacyRes.body.json() as { signed_in: boolean, session: Record<string, unknown> }
      // An API client: a refusal is the JSON 401, not the sign-in redirect a page gets.
      const newRes = await request(`${proxy.origin}/me`, { headers: { host, cookie, accept: 'application/json' } })
      const mine = await newRes.body.json() as { user?: string }
      const owner = legacy.session.tenant
      if (owner !== undefined && owner !== tenant) throw new Error(`legacy on ${tenant} saw a session of ${String(owner)}`)
      if (legacy.signed_in !== (newRes.statusCode === 200)) {
        throw new Error(`legacy signed in: ${legacy.signed_in}, migrated route: ${newRes.statusCode}`)
      }
      if (legacy.signed_in) {
        signedIn++
        if (legacy.session.user !== mine.user) throw new Error(`legacy sees ${String(legacy.session.user)}, the migrated route ${String(mine.user)}`)
        if (!Object.values(users).includes(String(mine.user))) throw new Error('unexpected user')
      }
      for (const id of madeUp) {
        if (await redis.exists(keyPrefix + id) !== 0) throw new Error(`legacy created a record under the made-up id ${id}`)
      }
    }), { numRuns: RUNS, seed: signed ? 7 : 11 })
    t.ok(signedIn > 5, `${signedIn} of ${RUNS} generated requests were signed in, on both sides alike`)
  })
}
