// itsdangerous decodes a signature leniently (unused padding bits, `+` for `-`, `=` padding,
// characters outside the alphabet dropped), so one signed id has many spellings legacy accepts.
// ficus accepts only the canonical one, and strips every other for legacy: checked for every 1-
// and 2-character spelling of the signature's last character, against Flask-Session's own signer
// and through ficus to the real Flask + Flask-Session app.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { me } from '../../new-routes/me/index.ts'
import { ItsdangerousSigner } from '../../sessions/signer.ts'
import { FLASK_FIXTURE_DIR, SYSTEM_PYTHON, startFlaskApp } from '../helpers/flask-app.ts'
import { flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'signature-spellings-secret'
const SCHOOL_A = 'school-a.example.org'
// The base64url alphabet, the standard one's extra characters, padding, and plain cookie
// characters that itsdangerous drops before decoding.
const ALPHABET = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', '+', '/', '=', '!', '*', '~', '.', ':', '@']

async function pythonUnsign (values: readonly string[]): Promise<string[]> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(SYSTEM_PYTHON, [FLASK_FIXTURE_DIR + 'pickle_tool.py', 'unsign-lines', SECRET],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => err === null ? resolve(stdout) : reject(err))
    child.stdin?.end(values.join('\n') + '\n')
  })
  return out.trim().split('\n')
}

/** Every value made by replacing the signature's last character with 0, 1 or 2 characters. */
function spellings (signed: string): string[] {
  const stem = signed.slice(0, -1)
  const out = [stem]
  for (const a of ALPHABET) {
    out.push(stem + a)
    for (const b of ALPHABET) out.push(stem + a + b)
  }
  return out
}

t.test('ficus accepts exactly the canonical spelling; each one Flask-Session accepts names the same id', async (t) => {
  const signer = new ItsdangerousSigner({ secret: SECRET })
  const ids = [randomUUID(), randomUUID(), 'x', 'id.with.dots']
  for (const id of ids) {
    const canonical = signer.sign(id)
    const values = spellings(canonical)
    const python = await pythonUnsign(values)
    const accepted = values.filter((_, i) => python[i] !== 'BAD')
    t.ok(accepted.length > 1, `${id}: Flask-Session accepts ${accepted.length} of ${values.length} spellings`)
    const wrong = values.filter((value, i) => {
      const ours = signer.unsign(value)
      if (value === canonical) return ours !== id || python[i] !== id
      return ours !== undefined || (python[i] !== 'BAD' && python[i] !== id)
    })
    t.same(wrong, [], `${id}: only ${canonical.slice(-3)} passes ficus, and every spelling legacy accepts is the same id`)
  }
})

t.test('through ficus, no spelling but the canonical one reaches the real Flask app', async (t) => {
  const keyPrefix = `ficus-test:spellings:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: true, secret: SECRET })
  const proxy = await startProxy(t, {
    env: { LEGACY_URL: flask.url, BASE_DOMAIN: 'example.org', REDIS_URL, SESSION_CODEC: 'flask-session', SESSION_KEY_PREFIX: keyPrefix, SESSION_SIGNER: 'itsdangerous', SESSION_SECRET: SECRET },
    routes: [me],
    flags: flagsOnFor(['school-a'], 'me'),
    withSessions: true
  })
  const get = async (path: string, cookie: string): Promise<{ status: number, json: Record<string, unknown> }> => {
    // An API client: a refusal on the migrated route is the JSON 401, not a page.
    const res = await request(proxy.origin + path, { headers: { host: SCHOOL_A, cookie, accept: 'application/json' } })
    return { status: res.statusCode, json: await res.body.json() as Record<string, unknown> }
  }

  const login = await flask.get('/login?user=alice', { host: SCHOOL_A })
  const cookie = login.setCookies.find((c) => c.startsWith('session='))
  if (cookie === undefined) throw new Error('Flask set no session cookie')
  const canonical = cookie.slice('session='.length)
  const values = spellings(canonical)
  const python = await pythonUnsign(values)
  const lenient = values.filter((value, i) => python[i] !== 'BAD' && value !== canonical)
  t.ok(lenient.length >= 3, `${lenient.length} non-canonical spellings Flask-Session accepts`)

  t.equal((await get('/session', `session=${canonical}`)).json.signed_in, true, 'the canonical cookie signs in on legacy through ficus')
  t.equal((await get('/me', `session=${canonical}`)).status, 200, 'and on the migrated route')
  const leaked: string[] = []
  for (const value of lenient) {
    const direct = await flask.get('/session', { host: SCHOOL_A, cookie: `session=${value}` })
    if (direct.body.signed_in !== true) leaked.push(`${value}: Flask itself refuses it (the test's premise is wrong)`)
    const seen = await get('/cookies', `theme=dark; session=${value}`)
    if (seen.json.cookie !== 'theme=dark') leaked.push(`${value}: legacy received ${String(seen.json.cookie)}`)
    const page = await get('/session', `session=${value}`)
    if (page.json.signed_in !== false) leaked.push(`${value}: signed in on legacy through ficus`)
    if ((await get('/me', `session=${value}`)).status !== 401) leaked.push(`${value}: a session on the migrated route`)
  }
  t.same(leaked, [], 'every other spelling is stripped for legacy and no session for the migrated route')
})
