// Users signed in as the legacy would leave them: one JSON session per school in the shared
// Redis (127.0.0.1:6379), under a prefix of the test's own (removed at teardown). For tests of
// something else that need a migrated route's sign-in; test/access/ signs in on a real legacy.
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { CsrfTokens } from '../../access/csrf.ts'
import { jsonCodec } from '../../sessions/codecs.ts'

export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379'
const TTL_MS = 300_000
// Flask-WTF's secret for these sessions' CSRF tokens (given to ficus as CSRF_SECRET).
const CSRF_SECRET = 'signed-in-test-csrf-secret'

export interface SignedInSessions {
  /** REDIS_URL and SESSION_KEY_PREFIX for the ficus that reads them (SESSION_CODEC json, the default). */
  readonly env: Readonly<Record<string, string>>
  /** The Cookie header of `school`'s signed-in user. */
  cookie (school: string): string
  /** What a legacy page's form would send with an unsafe request: the session's CSRF token and the school's Origin. */
  csrfHeaders (school: string, host: string): Record<string, string>
}

export async function signedInSessions (t: { teardown (fn: () => unknown): void }, schools: readonly string[], user: { roles: readonly string[] } = { roles: ['teacher'] }): Promise<SignedInSessions> {
  const prefix = `ficus-test:signed-in:${randomUUID()}:`
  const redis = new Redis(SHARED_REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(prefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const cookies = new Map<string, string>()
  const csrfValues = new Map<string, string>()
  for (const school of schools) {
    const id = randomUUID()
    const csrfValue = CsrfTokens.sessionValue()
    await redis.set(prefix + id, jsonCodec.encode({ user: `${user.roles[0] ?? 'user'}-of-${school}`, roles: [...user.roles], tenant: school, csrf_token: csrfValue }), 'PX', TTL_MS)
    cookies.set(school, `session=${id}`)
    csrfValues.set(school, csrfValue)
  }
  const tokens = new CsrfTokens({ secret: CSRF_SECRET, timeLimitSeconds: 3600 })
  return {
    env: { REDIS_URL: SHARED_REDIS_URL, SESSION_KEY_PREFIX: prefix, CSRF_SECRET },
    csrfHeaders (school, host) {
      const value = csrfValues.get(school)
      if (value === undefined) throw new Error(`no session was written for ${school}`)
      return { 'x-csrftoken': tokens.sign(value), origin: `http://${host}` }
    },
    cookie (school) {
      const cookie = cookies.get(school)
      if (cookie === undefined) throw new Error(`no session was written for ${school}`)
      return cookie
    }
  }
}
