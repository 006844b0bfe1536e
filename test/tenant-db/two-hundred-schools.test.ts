// 200 real school databases, created once for the whole file because each DROP DATABASE costs a
// checkpoint: `ficus migrate` brings them all to current, then ficus serves them round-robin
// through 20 pools.
import t from 'tap'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runMigrateCli } from '../../tenant-db/migrate-cli.ts'
import type { MigrateCliOutput } from '../../tenant-db/migrate-cli.ts'
import { DEFAULT_MIGRATIONS_DIR } from '../../tenant-db/config.ts'
import { attendanceRegisterRoutes } from '../../new-routes/attendance-register/index.ts'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { classNameOf, ConnectionSampler, countConnections, createControlDatabase, createSchoolDatabases, insertTenants, ListRegistry, PG_HOST_URL, SCHOOL_HEADER, seedSchools, startRouteApp, tenantsOf, waitFor, withAdmin, testDatabasePrefix } from '../helpers/tenant-databases.ts'
import type { SchoolDatabase } from '../helpers/tenant-databases.ts'

t.setTimeout(170_000)

const PREFIX = testDatabasePrefix('ficus_t_migall')
const SCHOOLS = 200
const CONCURRENCY = 8
const FAILING = ['school-007', 'school-100', 'school-199']

class Capture implements MigrateCliOutput {
  readonly isTTY: boolean
  text = ''
  constructor (isTTY = false) { this.isTTY = isTTY }
  write (chunk: string): boolean {
    this.text += chunk
    return true
  }
}

async function migrate (argv: string[], env: Record<string, string>, stdout = new Capture()) {
  const stderr = new Capture()
  const code = await runMigrateCli(['--concurrency', String(CONCURRENCY), ...argv], env, { stdout, stderr })
  return { code, out: stdout.text, err: stderr.text }
}

/** The ledger of every school, `concurrency` connections at a time: id -> applied migration names. */
async function ledgers (schools: readonly SchoolDatabase[]): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>()
  let next = 0
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < schools.length) {
      const school = schools[next++] as SchoolDatabase
      const names = await withAdmin(async (client) => {
        const present = await client.query("SELECT to_regclass('ficus_migrations') IS NOT NULL AS present")
        if (present.rows[0]?.present !== true) return []
        return (await client.query<{ name: string }>('SELECT name FROM ficus_migrations ORDER BY name')).rows.map((row) => row.name)
      }, school.url)
      result.set(school.id, names)
    }
  }))
  return result
}

const BASE = ['001_school_marker.sql', '002_attendance.sql', '003_audit_log.sql']

const controlUrl = await createControlDatabase(t, PREFIX, { migrated: false })
const schools = await createSchoolDatabases(t, PREFIX, SCHOOLS, { migrated: false })
const migrationsDir = await mkdtemp(join(tmpdir(), 'ficus-migrations-'))
t.teardown(() => rm(migrationsDir, { recursive: true, force: true }))
await cp(DEFAULT_MIGRATIONS_DIR, migrationsDir, { recursive: true })
const env = {
  DATABASE_URL: controlUrl,
  TENANT_DATABASE_URL_TEMPLATE: `${PG_HOST_URL}/{database}`,
  MIGRATIONS_DIR: migrationsDir
}

t.test('the control database is migrated on its own', async (t) => {
  const run = await migrate(['--control-only'], env)
  t.equal(run.code, 0, run.err)
  t.match(run.out, /control\s+applied 001_tenants\.sql/)
  t.notMatch(run.out, /school-/)
  // The schools are registered by database name, resolved through TENANT_DATABASE_URL_TEMPLATE.
  await insertTenants(controlUrl, schools.map((school, i) => ({ id: school.id, databaseName: school.database, cohorts: i < 10 ? ['pilot'] : [] })))
})

t.test('one run brings all 200 school databases to current', async (t) => {
  const run = await migrate([], env)
  t.equal(run.code, 0, run.err)
  t.match(run.out, /control\s+already current/)
  t.match(run.out, `summary: ${SCHOOLS} applied, 0 already current, 0 failed`)
  const all = await ledgers(schools)
  t.equal(all.size, SCHOOLS)
  t.same([...all.values()].filter((names) => names.join() !== BASE.join()), [], 'every ledger lists the three migrations')
})

t.test('a second run changes nothing', async (t) => {
  const run = await migrate([], env)
  t.equal(run.code, 0, run.err)
  t.match(run.out, `summary: 0 applied, ${SCHOOLS} already current, 0 failed`)
  t.notMatch(run.out, /\bapplied 0/)
})

t.test('a migration failing on 3 schools leaves the 197 others migrated and names the 3', async (t) => {
  await writeFile(join(migrationsDir, 'tenant', '004_registers_closed.sql'), 'CREATE TABLE registers_closed (class_id text NOT NULL, day date NOT NULL, PRIMARY KEY (class_id, day));\n')
  for (const id of FAILING) {
    const school = schools.find((s) => s.id === id) as SchoolDatabase
    await withAdmin((client) => client.query('CREATE TABLE registers_closed (stray int)'), school.url)
  }
  const run = await migrate([], env)
  t.equal(run.code, 1)
  t.match(run.out, `summary: ${SCHOOLS - FAILING.length} applied, 0 already current, ${FAILING.length} failed`)
  t.match(run.err, `3 school databases failed: ${FAILING.join(', ')}`)
  for (const id of FAILING) t.match(run.out, new RegExp(`${id}\\s+FAILED at 004_registers_closed\\.sql: .*already exists`))
  const all = await ledgers(schools)
  const without = [...all].filter(([, names]) => !names.includes('004_registers_closed.sql')).map(([id]) => id)
  t.same(without, FAILING)
})

t.test('after the fix, resuming completes the 3 and leaves the others alone', async (t) => {
  for (const id of FAILING) {
    const school = schools.find((s) => s.id === id) as SchoolDatabase
    await withAdmin((client) => client.query('DROP TABLE registers_closed'), school.url)
  }
  const run = await migrate([], env)
  t.equal(run.code, 0, run.err)
  t.match(run.out, `summary: ${FAILING.length} applied, ${SCHOOLS - FAILING.length} already current, 0 failed`)
  for (const id of FAILING) t.match(run.out, new RegExp(`${id}\\s+applied 004_registers_closed\\.sql`))
  const all = await ledgers(schools)
  t.equal([...all.values()].filter((names) => names.length === 4).length, SCHOOLS)
})

t.test('--dry-run lists what would be applied and changes nothing', async (t) => {
  await writeFile(join(migrationsDir, 'tenant', '005_pupils_year.sql'), 'ALTER TABLE pupils ADD COLUMN year int;\n')
  t.teardown(() => rm(join(migrationsDir, 'tenant', '005_pupils_year.sql')))
  const run = await migrate(['--dry-run'], env)
  t.equal(run.code, 0, run.err)
  t.match(run.out, `summary: 0 applied, 0 already current, ${SCHOOLS} with pending migrations, 0 failed`)
  t.match(run.out, /school-001\s+would apply 005_pupils_year\.sql/)
  const all = await ledgers(schools.slice(0, 5))
  t.same([...all.values()].map((names) => names.length), [4, 4, 4, 4, 4])
})

t.test('--tenant and --cohort pick the schools', async (t) => {
  const one = await migrate(['--tenant', 'school-002,school-003', '--tenants-only'], env)
  t.equal(one.code, 0, one.err)
  t.match(one.out, 'summary: 0 applied, 2 already current, 0 failed')
  t.notMatch(one.out, /control/)
  const pilot = await migrate(['--cohort', 'pilot', '--tenants-only'], env)
  t.equal(pilot.code, 0, pilot.err)
  t.match(pilot.out, 'summary: 0 applied, 10 already current, 0 failed')
  const unknown = await migrate(['--tenant', 'school-999'], env)
  t.equal(unknown.code, 2)
  t.match(unknown.err, 'not registered: school-999')
})

t.test('an applied migration edited afterwards is reported and nothing more is applied there', async (t) => {
  await writeFile(join(migrationsDir, 'tenant', '004_registers_closed.sql'), 'CREATE TABLE registers_closed (class_id text, day date);\n')
  const run = await migrate(['--tenant', 'school-004'], env)
  t.equal(run.code, 1)
  t.match(run.out, /school-004\s+FAILED: An applied migration was edited afterwards: 004_registers_closed\.sql no longer matches/)
})

t.test('progress is drawn on a terminal only', async (t) => {
  const tty = new Capture(true)
  const onTty = await migrate(['--tenants-only', '--cohort', 'pilot', '--dry-run'], env, tty)
  t.equal(onTty.code, 1, 'the edited migration still fails the run')
  t.match(tty.text, /\r\x1b\[2K10\/10 schools/)
  const piped = await migrate(['--tenants-only', '--cohort', 'pilot', '--dry-run'], env)
  t.notMatch(piped.out, /\r/)
})

t.test('bad usage exits 2 and says why', async (t) => {
  const run = await migrate(['--concurrency', '0', '--frobnicate'], env)
  t.equal(run.code, 2)
  t.match(run.err, /frobnicate/)
  const noDb = await migrate([], { MIGRATIONS_DIR: migrationsDir })
  t.equal(noDb.code, 2)
  t.match(noDb.err, 'DATABASE_URL is required')
})

const POOLS_MAX = 20
const POOL_SIZE = 2
const IN_FLIGHT = 30
const DAY = '2024-05-06'

t.test('200 schools served round-robin through 20 pools: each from its own database, never more than 20 x 2 connections', async (t) => {
  await seedSchools(schools)
  const databases = new PgTenantDatabases({
    poolsMax: POOLS_MAX,
    poolSize: POOL_SIZE,
    statementTimeoutMs: 10_000,
    // Generous: on a loaded 2-core machine a request may queue behind 29 others for a pool.
    connectTimeoutMs: 20_000,
    poolIdleMs: 30_000
  })
  const registry = withTenantDatabases(new ListRegistry(tenantsOf(schools)), databases)
  t.teardown(() => registry.close())
  const app = await startRouteApp(t, registry, attendanceRegisterRoutes)
  const sampler = new ConnectionSampler(PREFIX)
  await sampler.start(10)
  t.teardown(() => sampler.stop())

  const wrong: string[] = []
  const failed: string[] = []
  // Round 1 reads, round 2 marks p1 late, round 3 reads the mark back: 600 requests, 30 at a time.
  const rounds = ['read', 'mark', 'read-back'] as const
  const work = rounds.flatMap((round) => schools.map((school) => ({ round, id: school.id })))
  let next = 0
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < work.length) {
      const { round, id } = work[next++] as (typeof work)[number]
      const response = round === 'mark'
        ? await app.inject({ method: 'POST', url: '/attendance/7B', headers: { [SCHOOL_HEADER]: id, accept: 'application/json' }, payload: { date: DAY, marks: [{ pupilId: 'p1', status: 'late', note: `late at ${id}` }] } })
        : await app.inject({ method: 'GET', url: `/attendance/7B?date=${DAY}`, headers: { [SCHOOL_HEADER]: id, accept: 'application/json' } })
      if (response.statusCode !== 200) {
        failed.push(`${round} ${id}: ${response.statusCode} ${response.body}`)
        continue
      }
      const body = response.json() as { className: string, pupils: Array<{ pupilId: string, status: string | null, note: string | null }> }
      const p1 = body.pupils.find((pupil) => pupil.pupilId === 'p1')
      const expectMark = round !== 'read'
      if (body.className !== classNameOf(id) || (expectMark ? p1?.note !== `late at ${id}` : p1?.status !== null)) wrong.push(`${round} ${id}: ${response.body}`)
    }
  }))
  await sampler.stop()

  t.same(failed, [], 'every request answered 200')
  t.same(wrong, [], 'every answer came from the school\'s own database')
  t.ok(sampler.samples > 10, `pg_stat_activity sampled ${sampler.samples} times`)
  t.ok(sampler.max > 0, 'the sampler saw the pools\' connections')
  t.ok(sampler.max <= POOLS_MAX * POOL_SIZE, `at most ${POOLS_MAX * POOL_SIZE} server connections (saw ${sampler.max})`)
  const stats = databases.stats()
  t.ok(stats.open <= POOLS_MAX, `${stats.open} pools open`)
  t.same({ busy: stats.busy, waiting: stats.waiting, closing: stats.closing }, { busy: 0, waiting: 0, closing: 0 }, 'nothing left busy, waiting or half-closed')

  await registry.close()
  t.same(databases.stats(), { open: 0, closing: 0, busy: 0, waiting: 0 })
  await waitFor(async () => await countConnections(PREFIX) === 0, 5_000, 'the pools\' connections to close')
  t.pass('no connection left to any school database')
})
