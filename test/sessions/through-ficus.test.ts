// The whole journey through ficus, with a real Flask + Flask-Session legacy app behind it and one
// Redis between them: sign in on a legacy page, a migrated route sees the user, what it writes the
// next legacy page shows, legacy logout ends it; another school's cookie is refused and stripped.
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { CsrfTokens } from '../../access/csrf.ts'
import { me, updatePreferences } from '../../new-routes/me/index.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'through-ficus-secret'
const SCHOOL_A = 'school-a.example.org'
const SCHOOL_B = 'school-b.example.org'

interface Answer { status: number, servedBy: string | undefined, json: Record<string, unknown>, setCookies: string[] }

for (const signed of [false, true]) {
  t.test(signed ? 'with SESSION_USE_SIGNER=True' : 'with plain session ids', async (t) => {
    const keyPrefix = `ficus-test:through:${randomUUID()}:`
    const redis = new Redis(REDIS_URL)
    t.teardown(async () => {
      const keys = await redis.keys(keyPrefix + '*')
      if (keys.length > 0) await redis.del(...keys)
      redis.disconnect()
    })
    const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: signed, secret: SECRET, lifetimeSeconds: 1800 })
    const proxy = await startProxy(t, {
      env: {
        LEGACY_URL: flask.url,
        BASE_DOMAIN: 'example.org',
        REDIS_URL,
        SESSION_CODEC: 'flask-session',
        SESSION_KEY_PREFIX: keyPrefix,
        CSRF_SECRET: SECRET,
        ...(signed ? { SESSION_SIGNER: 'itsdangerous', SESSION_SECRET: SECRET } : {})
      },
      routes: [me, updatePreferences],
      flags: flagsOnFor(['school-a', 'school-b'], 'me'),
      withSessions: true
    })

    async function send (method: 'GET' | 'PUT', path: string, host: string, cookie?: string, body?: unknown): Promise<Answer> {
      const res = await request(proxy.origin + path, {
        method,
        headers: {
          host,
          ...(cookie === undefined ? {} : { cookie }),
          // A write carries the CSRF token the legacy's pages hand out (see test/access/).
          ...(method === 'PUT' ? { origin: `http://${host}`, 'x-csrftoken': csrfToken } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' })
        },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
      const text = await res.body.text()
      const setCookie = res.headers['set-cookie']
      return {
        status: res.statusCode,
        servedBy: res.headers['x-served-by'] as string | undefined,
        json: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : {},
        setCookies: (Array.isArray(setCookie) ? setCookie : setCookie === undefined ? [] : [setCookie]).map((c) => c.split(';')[0] ?? '')
      }
    }

    const login = await send('GET', '/login?user=alice', SCHOOL_A)
    t.equal(login.servedBy, 'legacy', 'sign-in is a legacy page')
    const cookie = login.setCookies.find((c) => c.startsWith('session='))
    if (cookie === undefined) throw new Error('no session cookie came back through ficus')
    await send('GET', '/set?key=csrf_token&value=through-ficus-csrf', SCHOOL_A, cookie)
    const csrfToken = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 }).sign('through-ficus-csrf')

    const seen = await send('GET', '/me', SCHOOL_A, cookie)
    t.equal(seen.servedBy, 'new', '/me is migrated')
    t.equal(seen.status, 200)
    t.equal(seen.json.user, 'alice', 'the migrated route sees the user legacy signed in')
    t.equal(seen.json.school, 'school-a')

    const written = await send('PUT', '/me/preferences', SCHOOL_A, cookie, { theme: 'dark' })
    t.equal(written.status, 200)
    const legacyPage = await send('GET', '/session', SCHOOL_A, cookie)
    t.equal(legacyPage.servedBy, 'legacy')
    t.same((legacyPage.json.session as Record<string, unknown>).preferences, { theme: 'dark' }, 'the next legacy page shows what the migrated route wrote')
    t.equal((legacyPage.json.session as Record<string, unknown>).user, 'alice', 'and legacy still knows the user')

    const invalid = await send('PUT', '/me/preferences', SCHOOL_A, cookie, ['not', 'an', 'object'])
    t.equal(invalid.status, 422, 'anything but a JSON object is refused')

    const elsewhere = await send('GET', '/me', SCHOOL_B, cookie)
    t.equal(elsewhere.status, 401, 'the school-a cookie is no session on school-b')
    const strippedFor = await send('GET', '/cookies', SCHOOL_B, cookie)
    t.equal(strippedFor.servedBy, 'legacy')
    t.equal(strippedFor.json.cookie, null, 'legacy on school-b receives no cookie at all')
    const keptWithOthers = await send('GET', '/cookies', SCHOOL_B, `theme=dark; ${cookie}; lang=en`)
    t.equal(keptWithOthers.json.cookie, 'theme=dark; lang=en', 'only the session cookie is removed, the others pass as sent')
    const ownSchool = await send('GET', '/cookies', SCHOOL_A, `theme=dark; ${cookie}`)
    t.equal(ownSchool.json.cookie, `theme=dark; ${cookie}`, 'on its own school the cookie passes untouched')

    if (signed) {
      const [id = '', signature = ''] = cookie.slice('session='.length).split('.')
      const tampered = `session=${id}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`
      t.equal((await send('GET', '/me', SCHOOL_A, tampered)).status, 401, 'a tampered signed cookie is rejected')
      t.equal((await send('GET', '/me', SCHOOL_A, `session=${id}`)).status, 401, 'an unsigned id is rejected when ids are signed')
    }

    const logout = await send('GET', '/logout', SCHOOL_A, cookie)
    t.equal(logout.servedBy, 'legacy')
    t.equal((await send('GET', '/me', SCHOOL_A, cookie)).status, 401, 'after legacy logout the migrated route sees no session')
  })
}
