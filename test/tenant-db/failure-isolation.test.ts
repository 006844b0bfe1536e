// One school's database unreachable or slow: that school's routes answer 503 quickly, the other
// schools keep answering, nothing leaks, and the school answers again once its database is back.
import t from 'tap'
import type { Test } from 'tap'
import { createServer, connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { Client } from 'pg'
import { attendanceRegisterRoutes } from '../../new-routes/attendance-register/index.ts'
import { FicusError } from '../../errors/index.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import type { PgTenantDatabasesOptions } from '../../tenant-db/pg-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { createSchoolDatabases, ListRegistry, SCHOOL_HEADER, startRouteApp, tenantsOf, waitFor, testDatabasePrefix } from '../helpers/tenant-databases.ts'
import type { SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(120_000)

const PREFIX = testDatabasePrefix('ficus_t_isolate')
const STATEMENT_TIMEOUT_MS = 1_000
const CONNECT_TIMEOUT_MS = 1_000
// The bound the issue asks for, with room for a loaded 2-core machine.
const ANSWER_BOUND_MS = STATEMENT_TIMEOUT_MS + CONNECT_TIMEOUT_MS + 3_000
const OPTIONS: PgTenantDatabasesOptions = { poolsMax: 20, poolSize: 2, statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: CONNECT_TIMEOUT_MS, poolIdleMs: 30_000 }

/** A TCP relay to PostgreSQL that can be cut: existing connections dropped, new ones accepted but never answered. */
class Relay {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  up = true

  constructor () {
    this.#server = createServer((client) => {
      this.#sockets.add(client)
      client.on('close', () => this.#sockets.delete(client))
      client.on('error', () => {})
      if (!this.up) return
      const upstream = connect(5432, '127.0.0.1')
      this.#sockets.add(upstream)
      upstream.on('close', () => { this.#sockets.delete(upstream); client.destroy() })
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      client.pipe(upstream).pipe(client)
    })
  }

  async listen (): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return (this.#server.address() as { port: number }).port
  }

  cut (): void {
    this.up = false
    for (const socket of this.#sockets) socket.destroy()
  }

  restore (): void {
    this.up = true
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

const schools = await createSchoolDatabases(t, PREFIX, 12)
const relay = new Relay()
const relayPort = await relay.listen()
t.teardown(() => relay.close())
const [cutSchool, slowSchool] = schools as [SchoolDatabase, SchoolDatabase, ...SchoolDatabase[]]
const others = schools.filter((school) => school !== cutSchool && school !== slowSchool)
const tenants = tenantsOf(schools).map((tenant) => tenant.id === cutSchool.id
  ? { ...tenant, databaseUrl: `postgres://postgres@127.0.0.1:${relayPort}/${cutSchool.database}` }
  : tenant)

async function setup (t: Test) {
  const databases = new PgTenantDatabases(OPTIONS)
  const registry = withTenantDatabases(new ListRegistry(tenants), databases)
  t.teardown(() => registry.close())
  const app = await startRouteApp(t, registry, attendanceRegisterRoutes)
  const get = async (id: string) => {
    const started = Date.now()
    const response = await app.inject({ method: 'GET', url: '/attendance/7B?date=2024-05-06', headers: { [SCHOOL_HEADER]: id, accept: 'application/json' } })
    const body = response.json() as { error?: { code: string } }
    return { status: response.statusCode, code: body.error?.code, ms: Date.now() - started }
  }
  return { databases, registry, get }
}

t.test('an unreachable database: 503 for its school only, quickly, and back without restart', async (t) => {
  const { databases, get } = await setup(t)
  for (const school of schools) t.equal((await get(school.id)).status, 200, `${school.id} answers before the cut`)

  relay.cut()
  t.teardown(() => relay.restore())
  // Pooled connections were dropped (fail at once); fresh ones hang unanswered (connect timeout).
  for (let attempt = 0; attempt < 3; attempt++) {
    const [cut, ...rest] = await Promise.all([get(cutSchool.id), ...others.map((school) => get(school.id))])
    t.equal(cut?.status, 503, `attempt ${attempt}: the cut school answers 503`)
    t.equal(cut?.code, 'FICUS_ERR_TENANT_DB_UNAVAILABLE')
    t.ok((cut?.ms ?? Infinity) < ANSWER_BOUND_MS, `within ${ANSWER_BOUND_MS} ms (took ${cut?.ms})`)
    t.same(rest.map((answer) => answer.status), others.map(() => 200), 'the 10 other schools keep answering')
  }

  relay.restore()
  await waitFor(async () => (await get(cutSchool.id)).status === 200, 10_000, 'the restored school to answer')
  t.pass('answers again after the database is back')
  const stats = databases.stats()
  t.same({ busy: stats.busy, waiting: stats.waiting }, { busy: 0, waiting: 0 }, 'no lease left behind')
})

t.test('a slow database: its queries are cancelled at the statement timeout, the others answer', async (t) => {
  const { databases, get } = await setup(t)
  const locker = new Client({ connectionString: slowSchool.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE attendance_marks IN ACCESS EXCLUSIVE MODE')

  const [slow, ...rest] = await Promise.all([get(slowSchool.id), ...others.map((school) => get(school.id))])
  t.equal(slow?.status, 503)
  t.equal(slow?.code, 'FICUS_ERR_TENANT_DB_TIMEOUT')
  t.ok((slow?.ms ?? 0) >= STATEMENT_TIMEOUT_MS * 0.9, `waited for the statement timeout (${slow?.ms} ms)`)
  t.ok((slow?.ms ?? Infinity) < ANSWER_BOUND_MS, `and not much longer (bound ${ANSWER_BOUND_MS} ms)`)
  t.same(rest.map((answer) => answer.status), others.map(() => 200))

  await locker.query('ROLLBACK')
  t.equal((await get(slowSchool.id)).status, 200, 'answers again once the lock is gone')
  t.equal(databases.stats().busy, 0)
})

t.test('pg_sleep beyond the statement timeout is cancelled by the server', async (t) => {
  const { registry } = await setup(t)
  const db = registry.get(slowSchool.id)?.db
  if (db === undefined) throw new Error('no db on the tenant')
  await t.rejects(db.query('SELECT pg_sleep(30)'), { code: 'FICUS_ERR_TENANT_DB_TIMEOUT', statusCode: 503 })
  t.same((await db.query<{ one: number }>('SELECT 1 AS one')).rows, [{ one: 1 }], 'the same pool serves the next query')
})

t.test('all pools busy: a new school waits for one, then gets a 503 busy error, and is served once one frees', async (t) => {
  const databases = new PgTenantDatabases({ ...OPTIONS, poolsMax: 1, connectTimeoutMs: 300 })
  t.teardown(() => databases.close())
  const [a, b] = tenantsOf(schools) as [typeof tenants[number], typeof tenants[number]]
  const dbA = databases.database({ ...a, databaseUrl: slowSchool.url })
  const dbB = databases.database(b)
  let release = (): void => {}
  const held = dbA.transaction(async (tx) => {
    await tx.query('SELECT 1')
    await new Promise<void>((resolve) => { release = resolve })
  })
  await waitFor(() => databases.stats().busy === 1, 5_000, 'the first school to hold its pool')
  const error = await dbB.query('SELECT 1').then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof FicusError)
  t.match(error, { code: 'FICUS_ERR_TENANT_DB_BUSY', statusCode: 503 })
  const waiting = dbB.query<{ marker: string }>('SELECT school_id AS marker FROM school_marker')
  release()
  await held
  t.same((await waiting).rows, [{ marker: b.id }], 'served from its own database once the other pool was idle and closed')
  t.same(databases.stats(), { open: 1, closing: 0, busy: 0, waiting: 0 })
})

t.test('a transaction handle kept past its end refuses to run queries', async (t) => {
  const { registry } = await setup(t)
  const db = registry.get(slowSchool.id)?.db
  if (db === undefined) throw new Error('no db on the tenant')
  const kept = await db.transaction(async (tx) => tx)
  await t.rejects(kept.query('SELECT 1'), { code: 'FICUS_ERR_TENANT_DB_TX_FINISHED' })
})
