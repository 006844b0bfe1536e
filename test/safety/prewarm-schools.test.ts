// PREWARM_SCHOOLS: a school, a cohort or every active school; their databases opened before
// /readyz says ready, at most PREWARM_CONCURRENCY at once, none started after PREWARM_TIMEOUT_MS,
// never more than the pool cap. The selection and the bounds on their own, then a real ficus
// process against real school databases.
import t from 'tap'
import { request } from 'undici'
import { ConfigError, parseConfig } from '../../proxy/config.ts'
import { openPrewarmSchools, selectPrewarmSchools } from '../../safety/prewarm-schools.ts'
import type { Tenant } from '../../tenants/tenant.ts'
import { closedPort, spawnFicus, writeJson } from '../helpers/proxy-kit.ts'
import { createControlDatabase, createSchoolDatabases, insertTenants, testDatabasePrefix, waitFor, withAdmin } from '../helpers/tenant-databases.ts'

const school = (id: string, cohorts: string[] = [], status: Tenant['status'] = 'active'): Tenant => ({ id, name: id, status, cohorts })
const REGISTRY = [school('a', ['pilot']), school('b', ['Pilot', 'wave-1']), school('c'), school('m', ['pilot'], 'maintenance'), school('s', [], 'suspended')]
const ids = (tenants: readonly Tenant[]): string[] => tenants.map((tenant) => tenant.id)

t.test('the selection: ids, cohorts, all-active; inactive schools only when named', async (t) => {
  t.same(ids(selectPrewarmSchools(['c', 'a'], REGISTRY).schools), ['c', 'a'])
  t.same(ids(selectPrewarmSchools(['cohort:pilot'], REGISTRY).schools), ['a', 'b'], 'cohorts compare without case; maintenance left out')
  t.same(ids(selectPrewarmSchools(['all-active'], REGISTRY).schools), ['a', 'b', 'c'])
  t.same(ids(selectPrewarmSchools(['cohort:wave-1', 'b', 'all-active'], REGISTRY).schools), ['b', 'a', 'c'], 'no school twice')
  t.same(ids(selectPrewarmSchools(['m'], REGISTRY).schools), ['m'], 'a school named on its own is opened whatever its status')
  t.same(selectPrewarmSchools(['a', 'gone'], REGISTRY).unknown, ['gone'])
  t.same(ids(selectPrewarmSchools(['cohort:nobody'], REGISTRY).schools), [])
})

t.test('PREWARM_SCHOOLS and PREWARM_CONCURRENCY are checked at startup', async (t) => {
  const config = parseConfig({ PREWARM_SCHOOLS: 'Cohort:Pilot, all-active,school-a', PREWARM_CONCURRENCY: '4' })
  t.same(config.prewarmSchools, ['cohort:pilot', 'all-active', 'school-a'])
  t.equal(config.prewarmConcurrency, 4)
  t.equal(parseConfig({}).prewarmConcurrency, 16)
  const error = t.throws(() => parseConfig({ PREWARM_SCHOOLS: 'cohort:,all active', PREWARM_CONCURRENCY: '0' })) as ConfigError
  t.ok(error instanceof ConfigError)
  t.equal(error.problems.filter((p) => p.startsWith('PREWARM_SCHOOLS')).length, 2, 'each bad entry reported')
  t.match(error.problems.find((p) => p.startsWith('PREWARM_SCHOOLS')), /cohort:<name> or all-active/)
  t.ok(error.problems.some((p) => p.startsWith('PREWARM_CONCURRENCY')))
})

t.test('bounds: concurrency, pool cap and deadline', async (t) => {
  const many = Array.from({ length: 40 }, (_, i) => school(`s${i}`))
  let inFlight = 0
  let peak = 0
  const slowOpen = async (): Promise<void> => {
    peak = Math.max(peak, ++inFlight)
    await new Promise((resolve) => setTimeout(resolve, 5))
    inFlight--
  }
  const capped = await openPrewarmSchools(many, slowOpen, { concurrency: 3, timeoutMs: 10_000, max: 25 })
  t.equal(peak, 3, 'never more than PREWARM_CONCURRENCY at once')
  t.same(capped, { opened: 25, failed: [], skipped: 15 }, 'no more than the pool cap, the rest counted')

  const started: string[] = []
  const late = await openPrewarmSchools(many, async (tenant) => {
    started.push(tenant.id)
    await new Promise((resolve) => setTimeout(resolve, 30))
  }, { concurrency: 2, timeoutMs: 100, max: 100 })
  t.ok(started.length < many.length && started.length >= 2, `${started.length} started before the deadline`)
  t.equal(late.opened + late.skipped, many.length)

  const failing = await openPrewarmSchools([school('x'), school('y')], async (tenant) => {
    if (tenant.id === 'x') throw new Error('refused')
  }, { concurrency: 2, timeoutMs: 1_000, max: 10 })
  t.same(failing, { opened: 1, failed: [{ id: 'x', error: 'refused' }], skipped: 0 })
})

t.test('a real ficus opens the selected schools\' pools before /readyz is ready', async (t) => {
  const prefix = testDatabasePrefix('ficus_t_prewarm')
  const schools = await createSchoolDatabases(t, prefix, 4)
  const controlUrl = await createControlDatabase(t, prefix)
  const [s1, s2, s3, s4] = schools as [typeof schools[0], typeof schools[0], typeof schools[0], typeof schools[0]]
  await insertTenants(controlUrl, [
    { id: s1.id, databaseUrl: s1.url, cohorts: ['pilot'] },
    { id: s2.id, databaseUrl: s2.url, cohorts: ['pilot'] },
    { id: s3.id, databaseUrl: s3.url },
    { id: s4.id, databaseUrl: s4.url, cohorts: ['pilot'], status: 'maintenance' }
  ])
  const flagsFile = `${t.testdir()}/flags.json`
  writeJson(flagsFile, { version: 2, features: [] })
  const legacy = `http://127.0.0.1:${await closedPort()}`
  const openDatabases = (): Promise<string[]> => withAdmin(async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname LIKE $1 || '\\_%' AND application_name = 'ficus' ORDER BY datname", [prefix])
    return rows.map((row) => row.datname)
  })

  for (const [selection, expected] of [['cohort:pilot', [s1, s2]], ['all-active', [s1, s2, s3]]] as const) {
    t.test(`PREWARM_SCHOOLS=${selection}`, async (t) => {
      t.same(await openDatabases(), [], 'no pool open before ficus starts')
      const ficus = spawnFicus(t, {
        HOST: '127.0.0.1',
        PORT: '0',
        ADMIN_PORT: '0',
        LEGACY_URL: legacy,
        FLAGS_FILE: flagsFile,
        DATABASE_URL: controlUrl,
        PREWARM_SCHOOLS: selection,
        PREWARM_CONCURRENCY: '2',
        PREWARM_LEGACY_CONNECTIONS: '0',
        TENANT_POOL_IDLE_MS: '60000'
      })
      const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
      let readyz: { status: string, checks: { prewarm: { detail: Record<string, string> } } } | undefined
      await waitFor(async () => {
        const answer = await request(`${String(serving.admin)}/readyz`)
        readyz = await answer.body.json() as typeof readyz
        return answer.statusCode === 200
      }, 20_000, '/readyz 200')
      // Nothing has asked for a school yet: whatever is open, the pre-warm opened.
      t.same(await openDatabases(), expected.map((s) => s.database), 'exactly the selected schools have a connection')
      t.same(readyz?.checks.prewarm.detail, { 'school databases': 'ok' })
      t.match(ficus.logs.find((line) => line.msg === 'school databases pre-warmed'), { selected: expected.length, opened: expected.length, failed: 0, skipped: 0 })
      ficus.child.kill('SIGTERM')
      await ficus.exited
      await waitFor(async () => (await openDatabases()).length === 0, 10_000, 'pools closed at exit')
    })
  }
})
