// A SESSION_SECRET that does not match the legacy's SECRET_KEY is loud: when most session cookies
// of a window fail their signature check, ficus logs an error (once per window) and counts it.
// Users sign in on a real Flask + Flask-Session legacy (SESSION_USE_SIGNER) behind a real ficus
// process whose secret is generated: different from Flask's, or the same.
import t from 'tap'
import fc from 'fast-check'
import type { Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { SignatureWatch } from '../../sessions/signature-watch.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import { spawnFicus, writeJson } from '../helpers/proxy-kit.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const FLASK_SECRET = 'the-legacy-secret-key-0123456789'
const USERS = 24
const ALERT_LOG = 'most session cookies fail their signature check: SESSION_SECRET probably differs from the legacy\'s SECRET_KEY'

t.test('the watch: one alert per window in which most of at least minChecks checks failed', async (t) => {
  const check = fc.record({ valid: fc.boolean(), afterMs: fc.integer({ min: 0, max: 400 }) })
  fc.assert(fc.property(fc.array(check, { maxLength: 300 }), (checks) => {
    let now = 0
    const alerts: number[] = []
    const watch = new SignatureWatch({ windowMs: 1_000, minChecks: 5, failShare: 0.5, now: () => now, onAlert: () => alerts.push(now) })
    // The model: windows open at the first check after the previous one ended.
    let start = -Infinity
    let checked = 0
    let failed = 0
    let alerted = false
    const expected: number[] = []
    for (const { valid, afterMs } of checks) {
      now += afterMs
      if (now - start >= 1_000) { start = now; checked = 0; failed = 0; alerted = false }
      checked++
      if (!valid) failed++
      if (!alerted && checked >= 5 && failed > checked / 2) { alerted = true; expected.push(now) }
      watch.record(valid)
    }
    // At most one alert per window, at the check that tipped it; alerts of two adjacent windows
    // may be less than a window apart, since a window opens at the first check after the last.
    if (alerts.join() !== expected.join()) throw new Error(`alerts at ${alerts.join()}, expected at ${expected.join()}`)
    if (watch.valid + watch.invalid !== checks.length || watch.invalid !== checks.filter((c) => !c.valid).length) throw new Error('counts')
  }), { numRuns: 300 })
  t.pass('300 random sequences')
})

async function runFicus (t: Test, ficusSecret: string): Promise<{ alerts: number, invalid: number, valid: number, logged: number }> {
  const keyPrefix = `ficus-test:secret:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: true, secret: FLASK_SECRET })
  const dir = mkdtempSync(join(tmpdir(), 'ficus-secret-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeJson(join(dir, 'tenants.json'), { tenants: [{ id: 'school-a', name: 'A' }] })
  writeJson(join(dir, 'flags.json'), { version: 2, features: [] })
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    BASE_DOMAIN: 'example.org',
    LEGACY_URL: flask.url,
    TENANTS_FILE: join(dir, 'tenants.json'),
    FLAGS_FILE: join(dir, 'flags.json'),
    REDIS_URL,
    SESSION_CODEC: 'flask-session',
    SESSION_KEY_PREFIX: keyPrefix,
    SESSION_SIGNER: 'itsdangerous',
    SESSION_SECRET: ficusSecret,
    PREWARM_LEGACY_CONNECTIONS: '0',
    LOG_LEVEL: 'info'
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  for (let i = 0; i < USERS; i++) {
    const login = await flask.get(`/login?user=user-${i}`, { host: 'school-a.example.org' })
    const cookie = login.setCookies.find((c) => c.startsWith('session='))
    if (cookie === undefined) throw new Error(`no session cookie from Flask: ${JSON.stringify(login)}`)
    const answer = await request(`${String(serving.public)}/session`, { headers: { host: 'school-a.example.org', cookie } })
    await answer.body.dump()
  }
  const metrics = parsePrometheusText(await (await fetch(`${String(serving.admin)}/metrics`)).text())
  return {
    alerts: sampleValue(metrics, 'ficus_session_signature_alerts_total') ?? -1,
    invalid: sampleValue(metrics, 'ficus_session_signature_checks_total', { outcome: 'invalid' }) ?? -1,
    valid: sampleValue(metrics, 'ficus_session_signature_checks_total', { outcome: 'valid' }) ?? -1,
    logged: ficus.logs.filter((line) => line.msg === ALERT_LOG && line.level === 50).length
  }
}

t.test('a ficus whose SESSION_SECRET differs from Flask\'s logs one error and counts it', async (t) => {
  const [secret] = fc.sample(fc.string({ minLength: 16, maxLength: 40 }).filter((s) => s !== FLASK_SECRET && s.trim() === s && s !== '' && !s.includes('\0')), 1)
  const seen = await runFicus(t, secret as string)
  t.comment(JSON.stringify(seen))
  t.ok(seen.invalid >= USERS, `every cookie failed its check (${seen.invalid})`)
  t.equal(seen.alerts, 1, 'one alert in the window')
  t.equal(seen.logged, 1, 'one error line, not one per cookie')
})

t.test('with the legacy\'s own secret: every check passes, no alert', async (t) => {
  const seen = await runFicus(t, FLASK_SECRET)
  t.ok(seen.valid >= USERS, `every cookie verified (${seen.valid})`)
  t.equal(seen.invalid, 0)
  t.equal(seen.alerts, 0)
  t.equal(seen.logged, 0)
})

