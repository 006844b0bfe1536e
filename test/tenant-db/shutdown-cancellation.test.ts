// Shutdown keeps its bounds with a write in flight on a slow school database (a delaying TCP
// proxy in front of it), ficus running as a real process: a write that outlives the grace is
// cancelled, its client gets no success, nothing of it is in the database afterwards, and the
// process exits 1 within DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + the fixed bound; a write that fits
// the grace is answered 2xx, is in the database, and the process exits 0.
// The write is a signed-in teacher's (a session in the shared Redis), with the CSRF token a legacy
// form would carry.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { MARKS_TABLE } from '../../new-routes/attendance-register/queries.ts'
import { SHUTDOWN_FIXED_BOUND_MS } from '../../safety/lifecycle.ts'
import { AUDIT_TABLE } from '../../tenant-db/audit.ts'
import { startDelayingProxy, type DelayingProxy } from '../helpers/delaying-proxy.ts'
import { signedInSessions, type SignedInSessions } from '../helpers/signed-in.ts'
import { closedPort, flagsOnFor, spawnFicus, writeJson, type FicusProcess } from '../helpers/proxy-kit.ts'
import { createControlDatabase, createSchoolDatabases, insertTenants, SEEDED_CLASS, testDatabasePrefix, waitFor, withAdmin, type SchoolDatabase, type TeardownHost } from '../helpers/tenant-databases.ts'

const PREFIX = testDatabasePrefix('ficus_stopw')
const DAY = '2026-12-01'
const WAIT_MS = 20_000
// Signal delivery, process exit and the test's own polling on a busy machine.
const EXIT_SLACK_MS = 1_000

interface Case {
  readonly school: SchoolDatabase
  readonly slow: DelayingProxy
  readonly ficus: FicusProcess
  readonly origin: string
  readonly teacher: SignedInSessions
}

async function start (t: TeardownHost, school: SchoolDatabase, env: Record<string, string>): Promise<Case> {
  const slow = await startDelayingProxy(t, { host: '127.0.0.1', port: 5432 })
  const controlUrl = await createControlDatabase(t, `${PREFIX}${school.id.replace(/\D/g, '')}`)
  await insertTenants(controlUrl, [{ id: school.id, databaseUrl: `postgres://postgres@127.0.0.1:${slow.port}/${school.database}` }])
  const dir = mkdtempSync(join(tmpdir(), 'ficus-stopw-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  writeJson(flagsFile, flagsOnFor([school.id], 'attendance-register'))
  const teacher = await signedInSessions(t, [school.id])
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    LEGACY_URL: `http://127.0.0.1:${await closedPort()}`,
    BASE_DOMAIN: 'localhost',
    FLAGS_FILE: flagsFile,
    DATABASE_URL: controlUrl,
    TENANT_POOL_SIZE: '1',
    PREWARM_SCHOOLS: school.id,
    PREWARM_LEGACY_CONNECTIONS: '0',
    LOG_LEVEL: 'info',
    ...teacher.env,
    ...env
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  // The pool's connection is opened at full speed by the pre-warm; then every round trip is slow.
  await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')
  return { school, slow, ficus, origin: String(serving.public), teacher }
}

function mark (running: Case): Promise<{ status: number, body: string } | Error> {
  const school = running.school.id
  const host = `${school}.localhost`
  return request(`${running.origin}/attendance/${SEEDED_CLASS}`, {
    method: 'POST',
    headers: { host, 'content-type': 'application/json', cookie: running.teacher.cookie(school), ...running.teacher.csrfHeaders(school, host) },
    body: JSON.stringify({ date: DAY, marks: [{ pupilId: 'p1', status: 'present' }] })
  }).then(async (response) => ({ status: response.statusCode, body: await response.body.text() }), (error: Error) => error)
}

async function openTransactions (database: string): Promise<number> {
  return withAdmin(async (admin) => (await admin.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ficus' AND xact_start IS NOT NULL", [database])).rows[0]?.n ?? -1)
}

async function stored (school: SchoolDatabase): Promise<{ marks: number, audits: number }> {
  return withAdmin(async (client) => ({
    marks: (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${MARKS_TABLE} WHERE day = $1`, [DAY])).rows[0]?.n ?? -1,
    audits: (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${AUDIT_TABLE}`)).rows[0]?.n ?? -1
  }), school.url)
}

/** SIGTERM once the write's transaction is open; resolves with the exit and the ms it took. */
async function stopMidWrite (running: Case): Promise<{ code: number | null, ms: number }> {
  await waitFor(async () => await openTransactions(running.school.database) > 0, WAIT_MS, 'the write to open its transaction')
  const started = performance.now()
  running.ficus.child.kill('SIGTERM')
  const exit = await running.ficus.exited
  return { code: exit.code, ms: Math.round(performance.now() - started) }
}

t.test('SIGTERM during writes on a slow school database', async (t) => {
  const [outlives, fits] = await createSchoolDatabases(t, PREFIX, 2)
  if (outlives === undefined || fits === undefined) throw new Error('two schools were created')

  t.test('a write that outlives the grace: cut, not in the database, exit 1 within the bound', async (t) => {
    const drainDelayMs = 300
    const shutdownTimeoutMs = 1_000
    const running = await start(t, outlives, { DRAIN_DELAY_MS: String(drainDelayMs), SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) })
    // About 1 s per round trip: the write needs several seconds, far past the 1.3 s of drain and grace.
    running.slow.delayMs = 500
    const answer = mark(running)
    const exit = await stopMidWrite(running)
    const bound = drainDelayMs + shutdownTimeoutMs + SHUTDOWN_FIXED_BOUND_MS
    t.comment(`exited ${exit.ms} ms after SIGTERM (bound ${bound} ms)`)
    t.equal(exit.code, 1, 'exit code 1: a request had to be cut')
    t.ok(exit.ms <= bound + EXIT_SLACK_MS, `exited within DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + ${SHUTDOWN_FIXED_BOUND_MS} ms`)
    const got = await answer
    t.ok(got instanceof Error || got.status >= 500, `the client got no success (${got instanceof Error ? got.message : got.status})`)
    t.ok(running.ficus.logs.some((line) => line.msg === 'handlers still running at SHUTDOWN_TIMEOUT_MS were cancelled'), 'the cancellation is logged')

    // Whatever was still on the slow network has arrived, and the server has seen the close.
    running.slow.delayMs = 0
    await waitFor(async () => await openTransactions(outlives.database) === 0, WAIT_MS, 'no transaction left open')
    t.equal(await openTransactions(outlives.database), 0, 'no transaction left open')
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    t.same(await stored(outlives), { marks: 0, audits: 0 }, 'neither the mark nor its audit row is in the database')
  })

  t.test('a write that fits the grace: 2xx, in the database, exit 0', async (t) => {
    const running = await start(t, fits, { DRAIN_DELAY_MS: '300', SHUTDOWN_TIMEOUT_MS: '15000' })
    running.slow.delayMs = 100
    const answer = mark(running)
    const exit = await stopMidWrite(running)
    t.comment(`exited ${exit.ms} ms after SIGTERM`)
    const got = await answer
    t.ok(!(got instanceof Error) && got.status === 200, `the write was answered 200 (${got instanceof Error ? got.message : `${got.status} ${got.body}`})`)
    t.equal(exit.code, 0, 'exit code 0: nothing was cut')
    t.same(await stored(fits), { marks: 1, audits: 1 }, 'the mark and its audit row are in the database')
  })
})
