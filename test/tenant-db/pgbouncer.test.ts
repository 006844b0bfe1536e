// Schools' databases through a real PgBouncer in transaction mode, and the one-round-trip path of
// a lone statement: the same answers, the same transaction and statement timeout as before, one
// round trip instead of three (counted on the wire), pools open for every school while the
// server connections stay within PgBouncer's pool per database.
import { connect, createServer, type Server, type Socket } from 'node:net'
import { Client, DatabaseError } from 'pg'
import t from 'tap'
import { PgTenantDatabases, type PgTenantDatabasesOptions } from '../../tenant-db/pg-databases.ts'
import { startPgBouncer } from '../helpers/pgbouncer.ts'
import { countConnections, createSchoolDatabases, SEEDED_CLASS, SEEDED_PUPILS, testDatabasePrefix, tenantsOf, classNameOf, type SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(120_000)

const PREFIX = testDatabasePrefix('ficus_t_bouncer')
const SCHOOLS = 12
const STATEMENT_TIMEOUT_MS = 400
const BOUNCER_POOL_SIZE = 2
const OPTIONS: PgTenantDatabasesOptions = { poolsMax: SCHOOLS, poolSize: 1, statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: 2_000, poolIdleMs: 30_000 }

/**
 * A TCP relay to PostgreSQL that counts round trips: each time the client sends after the
 * server has spoken (or first) is one flight, whatever number of messages or packets it holds.
 */
class FlightCounter {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  flights = 0
  port = 0

  constructor () {
    this.#server = createServer((client) => {
      const upstream = connect(5432, '127.0.0.1')
      let clientSpoke = false
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.on('data', (chunk) => {
        if (!clientSpoke) this.flights++
        clientSpoke = true
        upstream.write(chunk)
      })
      upstream.on('data', (chunk) => {
        clientSpoke = false
        client.write(chunk)
      })
      client.on('end', () => upstream.end())
      upstream.on('end', () => client.end())
    })
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as { port: number }).port
  }

  async close (): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

const schools: SchoolDatabase[] = await createSchoolDatabases(t, PREFIX, SCHOOLS)

t.test('a lone statement travels in one round trip, a transaction of one statement in three', async (t) => {
  const relay = new FlightCounter()
  await relay.listen()
  t.teardown(() => relay.close())
  const school = schools[0] as SchoolDatabase
  const databases = new PgTenantDatabases(OPTIONS)
  t.teardown(() => databases.close())
  const db = databases.database({ ...tenantsOf([school])[0]!, databaseUrl: school.url.replace(':5432/', `:${relay.port}/`) })
  await db.query('SELECT 1')

  relay.flights = 0
  const { rows } = await db.query<{ name: string }>('SELECT name FROM classes WHERE id = $1', [SEEDED_CLASS])
  t.same(rows, [{ name: classNameOf(school.id) }])
  t.equal(relay.flights, 1, 'query(): one round trip')

  relay.flights = 0
  await db.transaction((tx) => tx.query('SELECT name FROM classes WHERE id = $1', [SEEDED_CLASS]))
  t.equal(relay.flights, 3, 'transaction() with one statement: BEGIN + SET LOCAL, the statement, COMMIT')

  relay.flights = 0
  await t.rejects(db.query('SELECT pg_sleep(5)'), { code: 'FICUS_ERR_TENANT_DB_TIMEOUT' })
  t.equal(relay.flights, 2, 'a failed statement costs one more round trip: the ROLLBACK')
})

t.test('the same answers, transaction and timeout as before, on PostgreSQL and through PgBouncer', async (t) => {
  const bouncer = await startPgBouncer({ poolSize: BOUNCER_POOL_SIZE, maxClientConnections: 200 })
  t.teardown(() => bouncer.stop())
  for (const via of ['direct', 'pgbouncer'] as const) {
    t.test(via, async (t) => {
      const databases = new PgTenantDatabases(OPTIONS)
      t.teardown(() => databases.close())
      const school = schools[1] as SchoolDatabase
      const tenant = { ...tenantsOf([school])[0]!, databaseUrl: via === 'direct' ? school.url : bouncer.url(school.database) }
      const db = databases.database(tenant)

      const typed = await db.query('SELECT $1::int AS n, $2::text AS s, $3::date AS d, $4::text[] AS a, $5::jsonb AS j, $6::int8 AS big, $7::text AS nothing',
        [7, 'é', '2026-11-27', ['x', 'y'], { k: [1] }, '9007199254740993', null])
      t.same(typed.rows, [{ n: 7, s: 'é', d: '2026-11-27', a: ['x', 'y'], j: { k: [1] }, big: '9007199254740993', nothing: null }], 'parameters and types as on the transaction path')
      t.equal(typed.rowCount, 1)

      const written = await db.query("INSERT INTO attendance_marks (pupil_id, day, class_id, status) VALUES ($1, $2, $3, 'present')", [SEEDED_PUPILS[0], `2026-12-0${via === 'direct' ? 1 : 2}`, SEEDED_CLASS])
      t.equal(written.rowCount, 1, 'rowCount of an INSERT')
      const seen = await new Client({ connectionString: school.url })
      await seen.connect()
      t.teardown(() => seen.end())
      t.equal((await seen.query('SELECT count(*)::int AS n FROM attendance_marks WHERE pupil_id = $1', [SEEDED_PUPILS[0]])).rows[0].n, via === 'direct' ? 1 : 2, 'committed: another connection sees it')

      const duplicate = await db.query("INSERT INTO attendance_marks (pupil_id, day, class_id, status) VALUES ($1, '2026-12-01', $2, 'present')", [SEEDED_PUPILS[0], SEEDED_CLASS]).catch((error: unknown) => error)
      t.ok(duplicate instanceof DatabaseError && duplicate.code === '23505', 'a SQL error passes through untouched')
      t.same((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the connection is usable after it (rolled back)')

      const twoStatements = await db.query('SELECT 1; SELECT 2').catch((error: unknown) => error)
      t.ok(twoStatements instanceof DatabaseError && twoStatements.code === '42601', 'a second statement in the text is refused')

      const started = performance.now()
      const slow = await db.query('SELECT pg_sleep(10)').catch((error: unknown) => error) as { code?: string, statusCode?: number, cause?: unknown }
      const waited = performance.now() - started
      t.match(slow, { code: 'FICUS_ERR_TENANT_DB_TIMEOUT', statusCode: 503 })
      // 57014 is the server's own cancel: SET LOCAL statement_timeout was in force, not only the client's timer.
      t.ok(slow.cause instanceof DatabaseError && slow.cause.code === '57014', 'cancelled by the server (query_canceled)')
      t.ok(waited >= STATEMENT_TIMEOUT_MS * 0.9 && waited < 10_000, `at the statement timeout (${Math.round(waited)} ms)`)
      t.same((await db.query('SELECT 2 AS two')).rows, [{ two: 2 }], 'and the school answers again at once')

      // SET LOCAL ended with the transaction: a plain connection (through the same PgBouncer
      // pool when there is one) sees the server's default.
      const plain = new Client({ connectionString: tenant.databaseUrl })
      await plain.connect()
      t.teardown(() => plain.end())
      t.equal((await plain.query('SHOW statement_timeout')).rows[0].statement_timeout, '0', 'no timeout left behind on the server connection')
    })
  }
})

t.test(`${SCHOOLS} schools through PgBouncer at once: a pool open for each, server connections within PgBouncer's pool per database`, async (t) => {
  const bouncer = await startPgBouncer({ poolSize: BOUNCER_POOL_SIZE, maxClientConnections: 200 })
  t.teardown(() => bouncer.stop())
  const databases = new PgTenantDatabases({ ...OPTIONS, poolSize: 3 })
  t.teardown(() => databases.close())
  const handles = schools.map((school) => databases.database({ ...tenantsOf([school])[0]!, databaseUrl: bouncer.url(school.database) }))
  let peakServer = 0
  let peakPostgres = 0
  let done = false
  const sampling = (async () => {
    while (!done) {
      peakServer = Math.max(peakServer, (await bouncer.counts()).server)
      peakPostgres = Math.max(peakPostgres, await countConnections(PREFIX))
    }
  })()
  const answers = await Promise.all(handles.flatMap((db) => Array.from({ length: 6 }, async () =>
    (await db.query<{ school_id: string }>('SELECT school_id, pg_sleep(0.05) FROM school_marker')).rows[0]?.school_id)))
  done = true
  await sampling
  t.comment(`peaks: PgBouncer server connections ${peakServer}, PostgreSQL connections ${peakPostgres}`)
  t.same(answers, schools.flatMap((school) => Array.from({ length: 6 }, () => school.id)), 'every school answered from its own database')
  t.equal(databases.stats().open, SCHOOLS, 'a pool stays open for every school')
  const counts = await bouncer.counts()
  peakServer = Math.max(peakServer, counts.server)
  t.ok(peakServer <= SCHOOLS * BOUNCER_POOL_SIZE, `PgBouncer's server connections ${peakServer} <= ${SCHOOLS} databases x ${BOUNCER_POOL_SIZE}`)
  t.ok(peakPostgres <= SCHOOLS * BOUNCER_POOL_SIZE, `PostgreSQL saw ${peakPostgres} connections to the schools <= ${SCHOOLS * BOUNCER_POOL_SIZE}`)
  t.ok(counts.client <= SCHOOLS * 3, `ficus holds ${counts.client} client connections to PgBouncer <= pools x size`)
})
