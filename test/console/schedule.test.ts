// Scheduled changes: applied at their time when the flag is still where they were planned from,
// skipped and reported when it moved; with a control database, several replicas on one schedule
// apply each change exactly once (an advisory lock per tick), and the change log is there too.
import t from 'tap'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { Flags } from '../../flags/flags.ts'
import { migratedRoutes } from '../../new-routes/index.ts'
import { FileTenantRegistry } from '../../tenants/file-registry.ts'
import { FileFlagStore } from '../../console/flag-store.ts'
import { FileChangeLog, type ChangeLog } from '../../console/history.ts'
import { MigrationConsole } from '../../console/migration.ts'
import { FileSchedule, type Schedule } from '../../console/schedule.ts'
import { controlPool, PgChangeLog, PgSchedule, SCHEDULE_LOCK_KEY } from '../../console/pg-console.ts'
import { PROJECT_ROOT } from '../helpers/proxy-kit.ts'
import { databaseUrl, dropDatabases, testDatabasePrefix, withAdmin } from '../helpers/tenant-databases.ts'

const SILENT = { info () {}, warn () {}, error () {} }
const POLL_MS = 50

async function replica (t: { teardown (fn: () => unknown): void }, flagsFile: string, log: ChangeLog, schedule: Schedule): Promise<MigrationConsole> {
  const registry = new FileTenantRegistry({ path: join(PROJECT_ROOT, 'demo/tenants.json') })
  await registry.start()
  const flags = await Flags.fromFile(flagsFile, SILENT, POLL_MS)
  const migration = new MigrationConsole({ routes: migratedRoutes, registry, flags, killSwitchFlag: undefined, guards: [], metrics: undefined, store: new FileFlagStore(flagsFile), log, schedule, freezeWindows: [] })
  t.teardown(async () => { migration.close(); await flags.close(); await registry.close() })
  return migration
}

function tenantValues (flagsFile: string): string[] {
  return JSON.parse(readFileSync(flagsFile, 'utf8')).features[0].strategies[0].constraints[0].values
}

async function until (what: string, holds: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await holds())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

function setUp (t: { teardown (fn: () => unknown): void }): { dir: string, flagsFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-console-schedule-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)
  return { dir, flagsFile }
}

t.test('embedded mode: applied when due, skipped and reported when the flag moved meanwhile', async (t) => {
  const { dir, flagsFile } = setUp(t)
  const migration = await replica(t, flagsFile, new FileChangeLog(join(dir, 'history.jsonl')), new FileSchedule(join(dir, 'schedule.json')))
  const move = { route: 'attendance.page', action: 'new' as const, target: { kind: 'schools' as const, ids: ['school-b'] } }
  const planned = await migration.scheduleMove(await migration.preview(move), 'alice', new Date(Date.now() + 1_200), undefined)
  t.same(tenantValues(flagsFile), ['school-a'], 'nothing happens before its time')
  await until('the scheduled move', async () => (await migration.scheduled()).find((c) => c.id === planned.id)?.status === 'applied')
  t.same(tenantValues(flagsFile), ['school-a', 'school-b'], 'applied at its time')
  const [change] = await migration.history({ school: 'school-b' })
  t.equal(change?.scheduledBy, planned.id, 'the history says it came from the schedule')
  t.equal(change?.who, 'alice', 'and who planned it')

  const later = await migration.scheduleMove(await migration.preview({ ...move, target: { kind: 'schools', ids: ['school-c'] } }), 'alice', new Date(Date.now() + 1_500), undefined)
  // Someone moves school-b back before it is due: the starting point is gone.
  const back = await migration.preview({ route: 'attendance.page', action: 'legacy', target: { kind: 'schools', ids: ['school-b'] } })
  await migration.save(back, 'bob', undefined)
  await until('the scheduled move to be settled', async () => (await migration.scheduled()).find((c) => c.id === later.id)?.status !== 'pending')
  const settled = (await migration.scheduled()).find((c) => c.id === later.id)
  t.equal(settled?.status, 'skipped', 'not applied')
  t.match(settled?.outcome, /attendance-page changed since this was scheduled/, 'and the reason is reported')
  t.same(tenantValues(flagsFile), ['school-a'], 'school-c was not moved')
  await t.rejects(migration.scheduleMove(back, 'bob', new Date(Date.now() - 1_000), undefined), /a time in the future/)
})

t.test('with a control database: the change log there, and each scheduled change applied by exactly one replica', async (t) => {
  const prefix = testDatabasePrefix('ficus_console')
  await dropDatabases(prefix)
  const name = `${prefix}_control`
  await withAdmin((admin) => admin.query(`CREATE DATABASE ${name}`))
  t.teardown(() => dropDatabases(prefix))
  const migrations = join(PROJECT_ROOT, 'migrations/control')
  await withAdmin(async (client) => {
    for (const file of readdirSync(migrations).sort()) await client.query(readFileSync(join(migrations, file), 'utf8'))
  }, databaseUrl(name))

  const { flagsFile } = setUp(t)
  const replicas: MigrationConsole[] = []
  for (let i = 0; i < 3; i++) {
    const pool = controlPool(databaseUrl(name))
    t.teardown(() => pool.end())
    replicas.push(await replica(t, flagsFile, new PgChangeLog(pool), new PgSchedule(pool)))
  }
  const [first] = replicas as [MigrationConsole]
  // Due a second after the preview (which waits for the page worker's start), not before it.
  await first.scheduleMove(await first.preview({ route: 'attendance.page', action: 'new', target: { kind: 'schools', ids: ['school-b'] } }), 'alice', new Date(Date.now() + 1_000), undefined)
  // Every replica ticks every second on its own; they also race here on purpose.
  await until('the scheduled move', async () => (await first.scheduled()).every((c) => c.status !== 'pending'))
  await Promise.all(replicas.map((r) => r.applyDue()))
  const control = new pg.Client({ connectionString: databaseUrl(name) })
  await control.connect()
  t.teardown(() => control.end())
  const { rows: changes } = await control.query('SELECT who, what, scheduled_by FROM console_changes')
  t.equal(changes.length, 1, 'one change recorded, by one replica')
  t.match(changes[0], { who: 'alice', what: 'school-b to new' })
  t.same(tenantValues(flagsFile), ['school-a', 'school-b'])
  t.same((await first.history({ school: 'school-b' })).map((c) => c.what), ['school-b to new'], 'the history reads from the control database')

  // While another replica holds the tick's lock, a replica applies nothing.
  await first.scheduleMove(await first.preview({ route: 'attendance.page', action: 'new', target: { kind: 'schools', ids: ['school-c'] } }), 'alice', new Date(Date.now() + 300), undefined)
  await control.query('BEGIN')
  await control.query('SELECT pg_advisory_xact_lock($1::bigint)', [SCHEDULE_LOCK_KEY])
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  t.same(tenantValues(flagsFile), ['school-a', 'school-b'], 'held lock: not applied')
  await control.query('COMMIT')
  await until('the move after the lock is released', () => tenantValues(flagsFile).includes('school-c'))
  t.pass('applied once the lock is free')
  // The flag is written first, then the change is recorded; give every replica a tick after that.
  const recorded = async (): Promise<number> => (await control.query('SELECT 1 FROM console_changes')).rowCount ?? 0
  await until('the change to be recorded', async () => await recorded() >= 2)
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  t.equal(await recorded(), 2, 'and recorded once')
})
