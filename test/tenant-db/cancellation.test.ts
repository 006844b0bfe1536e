// Work stops when its request ends, on a real PostgreSQL made slow by a delaying proxy in front
// of the school's database: a client that leaves mid-write leaves no row, no audit row and no
// transaction behind, and the pool goes on serving; shutdown cancels a running write (503); a GET
// past its deadline is served by legacy and its query is cancelled on the server. The routes are the test's own migrated routes, run by
// the edge itself (createFicus), so the tests do not depend on any feature route's access rules.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { request } from 'undici'
import { Flags } from '../../flags/flags.ts'
import { migratedRoute, type MigratedRoute } from '../../core/route.ts'
import { writeMarks, MARKS_TABLE } from '../../new-routes/attendance-register/queries.ts'
import { parseConfig } from '../../proxy/config.ts'
import { createFicus } from '../../proxy/create-ficus.ts'
import { auditedWrite, AUDIT_TABLE } from '../../tenant-db/audit.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { tenantDatabase, withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { startDelayingProxy } from '../helpers/delaying-proxy.ts'
import { flagsOnFor, writeJson } from '../helpers/proxy-kit.ts'
import { echoHandler, startRecordingLegacy } from '../helpers/recording-legacy.ts'
import { createSchoolDatabases, ListRegistry, SEEDED_CLASS, testDatabasePrefix, waitFor, withAdmin } from '../helpers/tenant-databases.ts'
import { parsePrometheusText, sampleSum } from '../helpers/prometheus-text.ts'
import type { Tenant } from '../../tenants/tenant.ts'

const PREFIX = testDatabasePrefix('ficus_cancel')
const FLAG = 'cancellation-test'
const APP_NAME = `ficus-cancel-${process.pid}`
const DAY = '2026-12-01'
const SETTLE_MS = 5_000

interface Activity { readonly state: string | null, readonly query: string, readonly xact: boolean }

/** The school database's server connections opened by this test's pools. */
async function activity (database: string): Promise<Activity[]> {
  return withAdmin(async (admin) => (await admin.query<Activity>(
    'SELECT state, query, xact_start IS NOT NULL AS xact FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
    [database, APP_NAME])).rows)
}

async function rowsOf (url: string): Promise<{ marks: number, audits: number }> {
  return withAdmin(async (client) => {
    const marks = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${MARKS_TABLE} WHERE day = $1`, [DAY])
    const audits = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${AUDIT_TABLE}`)
    return { marks: marks.rows[0]?.n ?? -1, audits: audits.rows[0]?.n ?? -1 }
  }, url)
}

t.test('cancellation through the edge, on a slow school database', async (t) => {
  const [school] = await createSchoolDatabases(t, PREFIX, 1)
  if (school === undefined) throw new Error('one school was created')
  const slow = await startDelayingProxy(t, { host: '127.0.0.1', port: 5432 })
  const databases = new PgTenantDatabases({
    poolsMax: 2, poolSize: 1, statementTimeoutMs: 60_000, connectTimeoutMs: 10_000, poolIdleMs: 60_000, applicationName: APP_NAME
  })
  t.teardown(() => databases.close())
  const registry = withTenantDatabases(new ListRegistry([{
    id: school.id, name: school.id, status: 'active', cohorts: [], databaseUrl: `postgres://postgres@127.0.0.1:${slow.port}/${school.database}`
  }]), databases)

  // A write of one mark, audited, in the shape of the attendance write: several round trips,
  // `?status=` the mark (default present), and with `?sleep=s` a long statement after the write, before COMMIT.
  const write: MigratedRoute = migratedRoute<{ Querystring: { sleep?: string, status?: 'present' | 'absent' } }>({
    name: 'test.write',
    method: 'POST',
    url: '/test/write',
    flag: FLAG,
    // A machine client's route: the test is about cancellation, not about who may call.
    access: 'public',
    csrf: false,
    handler: async (request) => auditedWrite(tenantDatabase(request.tenant), { userId: null, requestId: request.id }, async (tx) => {
      const written = await writeMarks(tx, SEEDED_CLASS, DAY, [{ pupilId: 'p1', status: request.query.status ?? 'present' }], null)
      await tx.record(written.map((after) => ({ table: MARKS_TABLE, key: { pupilId: after.pupil_id, day: DAY }, before: null, after })))
      await tx.query('SELECT pg_sleep($1::float8)', [Number(request.query.sleep ?? 0)])
      return { written: written.length, signalled: request.workSignal.aborted }
    })
  })
  // A write committed in its own transaction, then a long read.
  const writeThenRead: MigratedRoute = migratedRoute({
    name: 'test.write-then-read',
    method: 'POST',
    url: '/test/write-then-read',
    flag: FLAG,
    // A machine client's route: the test is about cancellation, not about who may call.
    access: 'public',
    csrf: false,
    handler: async (request) => {
      const db = tenantDatabase(request.tenant)
      await auditedWrite(db, { userId: null, requestId: request.id }, async (tx) => {
        const written = await writeMarks(tx, SEEDED_CLASS, DAY, [{ pupilId: 'p2', status: 'late' }], null)
        await tx.record(written.map((after) => ({ table: MARKS_TABLE, key: { pupilId: after.pupil_id, day: DAY }, before: null, after })))
      })
      return (await db.query('SELECT pg_sleep(30) AS slept')).rows
    }
  })
  const slowRead: MigratedRoute = migratedRoute({
    name: 'test.slow-read',
    method: 'GET',
    url: '/test/slow-read',
    flag: FLAG,
    // A machine client's route: the test is about cancellation, not about who may call.
    access: 'public',
    csrf: false,
    timeoutMs: 1_500,
    handler: async (request) => (await tenantDatabase(request.tenant).query('SELECT pg_sleep(30) AS slept')).rows
  })

  const dir = mkdtempSync(join(tmpdir(), 'ficus-cancel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  writeJson(flagsFile, flagsOnFor([school.id], FLAG))
  // The edge's configuration wants a tenants file; the schools come from the registry above.
  writeJson(join(dir, 'tenants.json'), { tenants: [] })
  const legacy = await startRecordingLegacy(t)
  const config = parseConfig({ LEGACY_URL: legacy.url, TENANTS_FILE: join(dir, 'tenants.json'), FLAGS_FILE: flagsFile, BASE_DOMAIN: 'localhost', LOG_LEVEL: 'warn' })
  const logs: Array<{ msg: string, reqId?: string, committedWrites?: number }> = []
  const logger = pino({ level: 'info' }, new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as { msg: string })
      callback()
    }
  }))
  const flags = await Flags.fromFile(flagsFile, logger, config.flagsPollMs)
  t.teardown(() => flags.close())
  const routes = [write, writeThenRead, slowRead]
  const ficus = await createFicus(config, { logger, registry, flags, routes, sessions: false, processMetrics: false, console: false })
  const { app, metrics, safety } = ficus
  t.teardown(() => ficus.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const host = `${school.id}.localhost`
  const cancellations = async (reason: string): Promise<number> => {
    return sampleSum(parsePrometheusText(await metrics.text()), 'ficus_cancellations_total', { reason })
  }
  const post = (signal?: AbortSignal, sleep = 0, status = 'present') => request(`${origin}/test/write?sleep=${sleep}&status=${status}`, {
    method: 'POST', headers: { host, 'content-type': 'application/json' }, body: '{}', signal
  })

  t.test('a client that leaves mid-write leaves no row, no audit row and no transaction', async (t) => {
    // The pool's one connection is opened at full speed; from then on every round trip is slow.
    await tenantDatabase(registry.get(school.id) as Tenant).query('SELECT 1')
    slow.delayMs = 300
    const client = new AbortController()
    const answer = post(client.signal).catch((error: Error) => error)
    await waitFor(async () => (await activity(school.database)).some((row) => row.xact), SETTLE_MS, 'the write to open its transaction')
    client.abort()
    t.ok(await answer instanceof Error, 'the client gave up')

    await waitFor(async () => (await activity(school.database)).every((row) => !row.xact), SETTLE_MS, 'no transaction left open')
    t.same((await activity(school.database)).filter((row) => row.xact), [], 'no transaction is left open on the school database')
    await waitFor(async () => await cancellations('client') === 1, SETTLE_MS, 'the cancellation to be counted')
    t.equal(await cancellations('client'), 1, 'ficus_cancellations_total{reason="client"} counts it')
    // Whatever was in flight on the slow network has arrived by now.
    await new Promise((resolve) => setTimeout(resolve, 4 * slow.delayMs))
    t.same(await rowsOf(school.url), { marks: 0, audits: 0 }, 'neither the mark nor its audit row was written')

    slow.delayMs = 0
    const next = await post()
    const body = await next.body.json() as { written: number }
    t.equal(next.statusCode, 200, 'the pool (one connection) serves the next write')
    t.equal(body.written, 1)
    t.same(await rowsOf(school.url), { marks: 1, audits: 1 }, 'the completed write and its audit row are there')
  })

  t.test('a client that leaves while its transaction runs a long statement: cancelled on the server', async (t) => {
    slow.delayMs = 0
    const before = await rowsOf(school.url)
    const client = new AbortController()
    const answer = post(client.signal, 30, 'absent').catch((error: Error) => error)
    await waitFor(async () => (await activity(school.database)).some((row) => row.xact && row.query.includes('pg_sleep')), SETTLE_MS, 'the write to reach its long statement')
    client.abort()
    t.ok(await answer instanceof Error, 'the client gave up')
    // pg_sleep(30) would hold the transaction open for 30 s if only the client side gave up.
    await waitFor(async () => (await activity(school.database)).every((row) => !row.xact), SETTLE_MS, 'no transaction left open')
    t.same((await activity(school.database)).filter((row) => row.xact), [], 'the statement was cancelled and the transaction rolled back')
    t.same(await rowsOf(school.url), before, 'no audit row was added')
    const stored = await withAdmin(async (c) => (await c.query<{ status: string }>(`SELECT status FROM ${MARKS_TABLE} WHERE pupil_id = 'p1' AND day = $1`, [DAY])).rows, school.url)
    t.same(stored, [{ status: 'present' }], 'the mark is still the one written before: the change to absent was rolled back')
    const next = await post()
    t.equal(next.statusCode, 200, 'the pool serves the next write')
    await next.body.dump()
  })

  t.test('shutdown cancels a running write: answered 503, rolled back, counted', async (t) => {
    slow.delayMs = 0
    const before = await rowsOf(school.url)
    const answer = post(undefined, 30, 'absent')
    await waitFor(async () => (await activity(school.database)).some((row) => row.xact && row.query.includes('pg_sleep')), SETTLE_MS, 'the write to reach its long statement')
    t.equal(safety.cancelRunning('shutdown'), 1, 'one handler was running')
    t.ok(await safety.settled(SETTLE_MS), 'it settled')
    const response = await answer
    t.equal(response.statusCode, 503)
    t.match(await response.body.text(), 'FICUS_ERR_REQUEST_CANCELLED', 'the answer names the cancellation')
    await waitFor(async () => (await activity(school.database)).every((row) => !row.xact), SETTLE_MS, 'no transaction left open')
    t.same(await rowsOf(school.url), before, 'nothing of the write is in the database')
    t.equal(await cancellations('shutdown'), 1, 'ficus_cancellations_total{reason="shutdown"} counts it')
  })

  t.test('cancelled after it committed a write: the write stays, and the log says so with the request id', async (t) => {
    slow.delayMs = 0
    const answer = request(`${origin}/test/write-then-read`, { method: 'POST', headers: { host, 'content-type': 'application/json' }, body: '{}' })
    await waitFor(async () => (await activity(school.database)).some((row) => row.state === 'active' && row.query.includes('pg_sleep')), SETTLE_MS, 'the handler to reach its long read')
    t.equal(safety.cancelRunning('shutdown'), 1)
    const response = await answer
    t.equal(response.statusCode, 503, 'the client is told the request failed')
    await response.body.dump()
    const line = logs.find((entry) => entry.msg === 'request cancelled after it committed a write: that write is done')
    t.ok(line !== undefined && typeof line.reqId === 'string' && line.reqId !== '', 'the log names the request')
    t.equal(line?.committedWrites, 1)
    const audited = await withAdmin(async (c) => (await c.query<{ request_id: string }>(`SELECT request_id FROM ${AUDIT_TABLE} WHERE row_key->>'pupilId' = 'p2'`)).rows, school.url)
    t.same(audited.map((row) => row.request_id), [line?.reqId], 'the committed write is in the database, audited with that request id')
  })

  t.test('a GET past its deadline falls back to legacy and its query is cancelled on the server', async (t) => {
    slow.delayMs = 0
    const sleeping = async (): Promise<boolean> => (await activity(school.database)).some((row) => row.state === 'active' && row.query.includes('pg_sleep'))
    let seen = false
    const answer = request(`${origin}/test/slow-read`, { headers: { host } })
    await waitFor(async () => (seen = await sleeping()), SETTLE_MS, 'the slow query to run')
    t.ok(seen, 'the query ran on the server')
    const response = await answer
    t.equal(response.statusCode, 200)
    t.equal(await response.body.text(), 'legacy GET /test/slow-read', 'legacy answered')
    await waitFor(async () => !await sleeping(), SETTLE_MS, 'the query to be cancelled')
    t.notOk(await sleeping(), 'the query no longer runs (pg_sleep(30) cancelled)')
    t.equal(await cancellations('deadline'), 1, 'ficus_cancellations_total{reason="deadline"} counts it')
    const again = await post()
    t.equal(again.statusCode, 200, 'the pool serves the next request')
    await again.body.dump()
  })

  t.test('the fallback\'s request to legacy stops when its client goes away', async (t) => {
    slow.delayMs = 0
    let legacyGaveUp = false
    // Legacy takes its time; it notices when ficus stops waiting.
    legacy.handle(({ res }) => { res.once('close', () => { legacyGaveUp = !res.writableFinished }) })
    t.teardown(() => legacy.handle(echoHandler))
    const seen = legacy.requests.length
    const client = new AbortController()
    const answer = request(`${origin}/test/slow-read`, { headers: { host }, signal: client.signal }).catch((error: Error) => error)
    await legacy.waitForRequests(seen + 1, SETTLE_MS)
    client.abort()
    t.ok(await answer instanceof Error, 'the client gave up')
    await waitFor(() => legacyGaveUp, SETTLE_MS, 'legacy\'s request to be aborted')
    t.ok(legacyGaveUp, 'ficus aborted its request to legacy')
  })
})
