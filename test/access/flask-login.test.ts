// Who may call a migrated route, against a real Flask legacy signing users in with Flask-Login,
// protecting its forms with Flask-WTF, and keeping sessions in Redis through Flask-Session; the
// attendance register writes to real PostgreSQL. Anonymous, role-less, other-school and forged
// requests are refused before the handler runs: no mark, no audit row.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import t from 'tap'
import { request } from 'undici'
import { CsrfTokens } from '../../access/csrf.ts'
import { Flags } from '../../flags/flags.ts'
import { migratedRoutes } from '../../new-routes/index.ts'
import { parseConfig } from '../../proxy/config.ts'
import { createFicus } from '../../proxy/create-ficus.ts'
import { flaskSessionCodec } from '../../sessions/codecs.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { writeJson } from '../helpers/proxy-kit.ts'
import { createSchoolDatabases, ListRegistry, SEEDED_CLASS, tenantsOf, testDatabasePrefix, withAdmin, type SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(120_000)

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'flask-login-access-secret'
const DAY = '2026-11-30'
const schools = await createSchoolDatabases(t, testDatabasePrefix('ficus_t_access'), 2)
const [schoolA, schoolB] = schools as [SchoolDatabase, SchoolDatabase]
const HOST_A = `${schoolA.id}.example.org`
const HOST_B = `${schoolB.id}.example.org`
const ORIGIN_A = `http://${HOST_A}`

const keyPrefix = `ficus-test:access:${randomUUID()}:`
const redis = new Redis(REDIS_URL)
t.teardown(async () => {
  const keys = await redis.keys(keyPrefix + '*')
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
})
const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, secret: SECRET, script: 'login_app.py', env: { SCHOOL_A: schoolA.id, SCHOOL_B: schoolB.id } })

const dir = mkdtempSync(join(tmpdir(), 'ficus-access-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const flagsFile = join(dir, 'flags.json')
const on = (name: string) => ({ name, enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [] }] })
writeJson(flagsFile, { version: 2, features: ['attendance-register', 'attendance-page', 'timetable-page', 'me'].map(on) })

const config = parseConfig({
  LEGACY_URL: flask.url,
  BASE_DOMAIN: 'example.org',
  FLAGS_FILE: flagsFile,
  REDIS_URL,
  SESSION_CODEC: 'flask-session',
  SESSION_KEY_PREFIX: keyPrefix,
  SESSION_USER_PRESET: 'flask-login',
  CSRF_SECRET: SECRET,
  LOG_LEVEL: 'silent'
})
const logger = pino({ level: 'silent' })
const registry = withTenantDatabases(new ListRegistry(tenantsOf(schools)), new PgTenantDatabases({ poolsMax: 4, poolSize: 2, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, poolIdleMs: 30_000 }))
t.teardown(() => registry.close())
const flags = await Flags.fromFile(flagsFile, logger, 100)
t.teardown(() => flags.close())
const ficus = await createFicus(config, { logger, registry, flags, routes: migratedRoutes, processMetrics: false, console: false })
const app = ficus.app
t.teardown(() => ficus.close())
await app.listen({ port: 0, host: '127.0.0.1' })
const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

interface Answer { status: number, location: string | undefined, servedBy: string | undefined, text: string, json: { error?: { code: string } } & Record<string, unknown>, cookie: string | undefined }

async function send (method: string, path: string, options: { host?: string, cookie?: string | undefined, headers?: Record<string, string>, json?: unknown, form?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { host: options.host ?? HOST_A, ...options.headers }
  if (options.cookie !== undefined) headers.cookie = options.cookie
  let body: string | undefined
  if (options.json !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(options.json) }
  if (options.form !== undefined) { headers['content-type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(options.form).toString() }
  const res = await request(origin + path, { method: method as 'GET', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const text = await res.body.text()
  const raw = res.headers['set-cookie']
  const session = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map((line) => line.split(';')[0] ?? '').find((c) => c.startsWith('session='))
  return {
    status: res.statusCode,
    location: res.headers.location as string | undefined,
    servedBy: res.headers['x-served-by'] as string | undefined,
    text,
    json: text.startsWith('{') ? JSON.parse(text) : {},
    cookie: session
  }
}

function csrfField (html: string): string {
  const match = /name="csrf_token" value="([^"]+)"/.exec(html)
  if (match?.[1] === undefined) throw new Error(`no csrf_token field in ${html.slice(0, 200)}`)
  return match[1]
}

/** Signs in on the legacy's own form, through ficus, as a browser would. */
async function signIn (user: string, host = HOST_A): Promise<string> {
  const form = await send('GET', '/login', { host })
  if (form.status !== 200 || form.cookie === undefined) throw new Error(`sign-in form: ${form.status}`)
  const done = await send('POST', '/login', { host, cookie: form.cookie, form: { user, csrf_token: csrfField(form.text), next: '/whoami' } })
  if (done.status !== 302) throw new Error(`sign-in as ${user}: ${done.status} ${done.text.slice(0, 200)}`)
  return done.cookie ?? form.cookie
}

/** The token Flask-WTF puts in the legacy's register form for this session. */
async function legacyFormToken (cookie: string): Promise<string> {
  const page = await send('GET', `/register/${SEEDED_CLASS}`, { cookie })
  if (page.status !== 200) throw new Error(`register page: ${page.status}`)
  return csrfField(page.text)
}

async function sessionRecord (cookie: string): Promise<Record<string, unknown>> {
  const bytes = await redis.getBuffer(keyPrefix + cookie.slice('session='.length))
  if (bytes === null) throw new Error('no session record')
  return flaskSessionCodec.decode(bytes) as Record<string, unknown>
}

const counts = async () => withAdmin(async (client) => {
  const marks = await client.query<{ n: string }>('SELECT count(*) AS n FROM attendance_marks')
  const audit = await client.query<{ n: string }>('SELECT count(*) AS n FROM audit_log')
  return { marks: Number(marks.rows[0]?.n), audit: Number(audit.rows[0]?.n) }
}, schoolA.url)

const mark = { date: DAY, marks: [{ pupilId: 'p1', status: 'late' }] }
const post = (cookie: string | undefined, headers: Record<string, string>, body: unknown = mark) =>
  send('POST', `/attendance/${SEEDED_CLASS}`, { cookie, headers: { accept: 'application/json', ...headers }, json: body })

t.test('anonymous: the API call is 401 with nothing written, the page is sent to the legacy sign-in with next', async (t) => {
  const before = await counts()
  const api = await post(undefined, { origin: ORIGIN_A })
  t.equal(api.status, 401)
  t.equal(api.servedBy, 'new', 'refused by ficus, on the new side')
  t.equal(api.json.error?.code, 'FICUS_ERR_NOT_SIGNED_IN')
  t.same(await counts(), before, 'no mark, no audit row')

  const page = await send('GET', `/attendance/${SEEDED_CLASS}?date=${DAY}`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
  t.equal(page.status, 302)
  t.equal(page.location, `/login?next=${encodeURIComponent(`/attendance/${SEEDED_CLASS}?date=${DAY}`)}`)
  const login = await send('GET', page.location ?? '')
  t.equal(login.servedBy, 'legacy')
  t.match(login.text, /name="next" value="\/attendance\/7B\?date=2026-11-30"/, 'the legacy sign-in page carries next back')
  t.equal((await send('GET', '/attendance')).status, 401, 'the new attendance page without Accept: text/html gets 401')
})

t.test('a teacher signed in on legacy marks the register with the token of a legacy form: 200, audited under that teacher', async (t) => {
  const cookie = await signIn('teacher-a')
  const record = await sessionRecord(cookie)
  t.equal(record._user_id, 'teacher-a', 'Flask-Login keeps the user under _user_id')
  t.equal(record._fresh, true)
  const token = await legacyFormToken(cookie)
  const before = await counts()
  const res = await post(cookie, { origin: ORIGIN_A, 'x-csrftoken': token })
  t.equal(res.status, 200, res.text)
  t.match(res.json, { changed: 1, pupils: [{ pupilId: 'p1', status: 'late', markedBy: 'teacher-a' }] })
  t.same(await counts(), { marks: before.marks + 1, audit: before.audit + 1 })
  const audit = await withAdmin(async (client) => (await client.query('SELECT user_id, school_id FROM audit_log ORDER BY id DESC LIMIT 1')).rows, schoolA.url)
  t.same(audit, [{ user_id: 'teacher-a', school_id: schoolA.id }], 'the audit row names the teacher')

  const read = await send('GET', `/attendance/${SEEDED_CLASS}?date=${DAY}`, { cookie, headers: { accept: 'application/json' } })
  t.equal(read.status, 200, 'a GET needs no token')
  const page = await send('GET', '/attendance', { cookie, headers: { accept: 'text/html' } })
  t.equal(page.status, 200)
  t.match(page.text, /Signed in as <strong class="user">teacher-a<\/strong> &middot; <a href="\/logout">Sign out<\/a>/, 'the migrated page shows who is signed in and links to sign out')

  const asField = await send('POST', `/attendance/${SEEDED_CLASS}`, { cookie, headers: { accept: 'application/json', origin: ORIGIN_A }, form: { csrf_token: token } })
  t.equal(asField.status, 422, 'the form field is accepted as the token (the body then fails the schema, not CSRF)')
  t.equal(asField.json.error?.code, 'FICUS_ERR_VALIDATION')

  const legacySide = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 }).sign(String(record.csrf_token))
  const echo = await send('POST', '/echo', { cookie, headers: { 'x-csrftoken': legacySide } })
  t.equal(echo.status, 200, 'and the reverse: Flask-WTF accepts the token as ficus signs it')
  t.equal((await send('POST', '/echo', { cookie, headers: { 'x-csrftoken': legacySide.slice(0, -2) + 'xx' } })).status, 400, 'Flask-WTF refuses a broken one')
})

t.test('a user without the role is 403, another school\'s teacher is 401; nothing written', async (t) => {
  const parent = await signIn('parent-a')
  const token = await legacyFormToken(parent)
  const before = await counts()
  const forbidden = await post(parent, { origin: ORIGIN_A, 'x-csrftoken': token })
  t.equal(forbidden.status, 403)
  t.equal(forbidden.json.error?.code, 'FICUS_ERR_FORBIDDEN')
  t.equal((await send('GET', '/attendance', { cookie: parent, headers: { accept: 'text/html' } })).status, 403, 'the page too')
  t.equal((await send('GET', '/me', { cookie: parent, headers: { accept: 'application/json' } })).status, 200, 'a signed-in user without roles still sees /me')

  const teacherB = await signIn('teacher-b', HOST_B)
  const elsewhere = await post(teacherB, { origin: ORIGIN_A, 'x-csrftoken': await legacyFormTokenOn(teacherB, HOST_B) })
  t.equal(elsewhere.status, 401, 'school-b\'s session is no user on school-a')
  t.equal(elsewhere.json.error?.code, 'FICUS_ERR_NOT_SIGNED_IN')
  t.same(await counts(), before, 'no mark, no audit row')
})

async function legacyFormTokenOn (cookie: string, host: string): Promise<string> {
  const page = await send('GET', `/register/${SEEDED_CLASS}`, { cookie, host })
  return csrfField(page.text)
}

t.test('CSRF: no token, another session\'s token, an expired one, a forged one, another origin: 403, nothing written', async (t) => {
  const cookie = await signIn('teacher-a')
  const other = await signIn('teacher-a')
  t.not(other, cookie, 'two browsers, two sessions')
  const token = await legacyFormToken(cookie)
  const record = await sessionRecord(cookie)
  const expired = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 }).sign(String(record.csrf_token), Math.floor(Date.now() / 1000) - 3601)
  const forged = new CsrfTokens({ secret: 'not-the-secret', timeLimitSeconds: 3600 }).sign(String(record.csrf_token))
  const body = { date: '2026-11-29', marks: [{ pupilId: 'p2', status: 'absent' }] }
  const before = await counts()
  const cases: Array<[string, Record<string, string>]> = [
    ['no token', { origin: ORIGIN_A }],
    ['a token of another session', { origin: ORIGIN_A, 'x-csrftoken': await legacyFormToken(other) }],
    ['an expired token', { origin: ORIGIN_A, 'x-csrftoken': expired }],
    ['a token signed with another secret', { origin: ORIGIN_A, 'x-csrftoken': forged }],
    ['another site\'s Origin', { origin: 'https://evil.example.net', 'x-csrftoken': token }],
    ['another school\'s Origin', { origin: `http://${HOST_B}`, 'x-csrftoken': token }],
    ['neither Origin nor Referer', { 'x-csrftoken': token }]
  ]
  for (const [what, headers] of cases) {
    const res = await post(cookie, headers, body)
    t.equal(res.status, 403, what)
    t.equal(res.json.error?.code, 'FICUS_ERR_CSRF', what)
  }
  t.same(await counts(), before, 'no mark, no audit row')
  const viaReferer = await post(cookie, { referer: `${ORIGIN_A}/register/7B`, 'x-csrftoken': token }, body)
  t.equal(viaReferer.status, 200, 'the same token from this school\'s page (Referer only) is accepted')
  const preferences = await send('PUT', '/me/preferences', { cookie, headers: { accept: 'application/json', origin: ORIGIN_A, 'x-csrf-token': token }, json: { theme: 'dark' } })
  t.equal(preferences.status, 200, 'X-CSRF-Token works as well')
})

t.test('a public route answers anonymous users', async (t) => {
  const res = await send('GET', '/timetable', { headers: { accept: 'text/html' } })
  t.equal(res.status, 200)
  t.equal(res.servedBy, 'new')
  t.match(res.text, /<a href="\/login\?next=%2Ftimetable">Sign in<\/a>/, 'with a sign-in link')
})
