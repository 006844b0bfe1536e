// Unleash takes at most 250 values per constraint (its default resource limit, checked against
// the real server's source in test/unleash-server): the console refuses at the preview a move that
// would exceed it, and the same schools still move as a cohort.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Flags } from '../../flags/flags.ts'
import { migratedRoutes } from '../../new-routes/index.ts'
import { FileTenantRegistry } from '../../tenants/file-registry.ts'
import { FileFlagStore } from '../../console/flag-store.ts'
import { FileChangeLog } from '../../console/history.ts'
import { MigrationConsole } from '../../console/migration.ts'
import { FileSchedule } from '../../console/schedule.ts'

const SILENT = { info () {}, warn () {}, error () {} }

/** The flags file with the limit the Unleash store declares. */
class LimitedStore extends FileFlagStore {
  readonly maxConstraintValues = 250
}

t.test('a list longer than Unleash takes is refused at the preview; a cohort is not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-console-limits-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ids = Array.from({ length: 300 }, (_, i) => `school-${i}`)
  writeFileSync(join(dir, 'tenants.json'), JSON.stringify({ tenants: ids.map((id, i) => ({ id, name: id, status: 'active', cohorts: i < 260 ? ['wave-2'] : [] })) }))
  writeFileSync(join(dir, 'flags.json'), JSON.stringify({ version: 2, features: [{ name: 'attendance-page', enabled: false, strategies: [] }] }))
  const registry = new FileTenantRegistry({ path: join(dir, 'tenants.json') })
  await registry.start()
  const flags = await Flags.fromFile(join(dir, 'flags.json'), SILENT)
  const migration = new MigrationConsole({
    routes: migratedRoutes, registry, flags, killSwitchFlag: undefined, guards: [], metrics: undefined,
    store: new LimitedStore(join(dir, 'flags.json')), log: new FileChangeLog(join(dir, 'history.jsonl')), schedule: new FileSchedule(join(dir, 'schedule.json')), freezeWindows: []
  })
  t.teardown(async () => { migration.close(); await flags.close(); await registry.close() })
  await t.rejects(migration.preview({ route: 'attendance.page', action: 'new', target: { kind: 'schools', ids: ids.slice(0, 251) } }),
    /this would put 251 schools in one list.*at most 250 values per constraint: move them as a cohort, or by percentage/)
  const fits = await migration.preview({ route: 'attendance.page', action: 'new', target: { kind: 'schools', ids: ids.slice(0, 250) } })
  t.equal(fits.toNew.length, 250, '250 fit')
  const cohort = await migration.preview({ route: 'attendance.page', action: 'new', target: { kind: 'cohort', cohort: 'wave-2' } })
  t.equal(cohort.toNew.length, 260, 'the 260 schools of wave-2 move as a cohort')
})
