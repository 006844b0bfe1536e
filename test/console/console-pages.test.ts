// The console's page worker as the main thread drives it: pages come back as UTF-8 bytes, the
// matrix follows the registry's snapshot, a preview asked for before the worker has ever
// answered is decided there all the same, and the worker's thread yields its core to the public
// port's (nice 19 and SCHED_IDLE, read back from Linux's /proc).
import t from 'tap'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Flags } from '../../flags/flags.ts'
import { migratedRoutes } from '../../new-routes/index.ts'
import { FileFlagStore } from '../../console/flag-store.ts'
import { FileChangeLog } from '../../console/history.ts'
import { MigrationConsole } from '../../console/migration.ts'
import { FileSchedule } from '../../console/schedule.ts'
import { PROJECT_ROOT } from '../helpers/proxy-kit.ts'
import { ListRegistry } from '../helpers/tenant-databases.ts'
import type { Tenant } from '../../tenants/tenant.ts'

const SILENT = { info () {}, warn () {}, error () {} }
const USER = { user: 'test', csrf: 'x' }
const SCHED_IDLE = 5
const DEMO: Tenant[] = JSON.parse(readFileSync(join(PROJECT_ROOT, 'demo/tenants.json'), 'utf8')).tenants

const dir = mkdtempSync(join(tmpdir(), 'ficus-console-pages-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const flagsFile = join(dir, 'flags.json')
copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)
const registry = new ListRegistry(DEMO)
const flags = await Flags.fromFile(flagsFile, SILENT)
const migration = new MigrationConsole({
  routes: migratedRoutes, registry, flags, killSwitchFlag: undefined, guards: [], metrics: undefined, store: new FileFlagStore(flagsFile),
  log: new FileChangeLog(join(dir, 'history.jsonl')), schedule: new FileSchedule(join(dir, 'schedule.json')), freezeWindows: []
})
t.teardown(async () => { migration.close(); await flags.close() })

t.test('a preview asked for at once, before the worker has answered anything, is decided by it', async (t) => {
  const preview = await migration.preview({ route: 'attendance.page', action: 'new', target: { kind: 'schools', ids: ['school-b'] } })
  t.same(preview.toNew, ['school-b'], 'school-b moves to new')
  t.same(preview.toLegacy, [], 'nobody moves back')
  const all = await migration.preview({ route: 'attendance.page', action: 'new', target: { kind: 'percentage', percent: 100 } })
  t.same([...all.toNew].sort(), ['school-b', 'school-c'], 'at 100%, every school not on new yet')
})

t.test('the matrix follows the registry: a school added, renamed or removed shows on the next page', async (t) => {
  // A search lists the schools whose id or name matches, each with a link to its cells.
  const found = async (q: string): Promise<boolean> => {
    const page = await migration.pages.matrix({ user: USER, freeze: undefined, query: { q } })
    t.ok(Buffer.isBuffer(page), 'the page comes as bytes, ready to write out')
    const text = page.toString('utf8')
    t.equal(page.byteLength, Buffer.byteLength(text), 'the bytes are the UTF-8 of the page')
    t.match(text, `value="${q}"`, 'the search, non-ASCII included, as typed')
    return text.includes('school=school-d')
  }
  t.notOk(await found('école'), 'no school-d yet')
  registry.replace([...DEMO, { id: 'school-d', name: 'École Élan', status: 'active', cohorts: ['wave-2'] }])
  t.ok(await found('école'), 'the new school is found by its name')
  registry.replace([...DEMO, { id: 'school-d', name: 'Dunmore Academy', status: 'active', cohorts: ['wave-2'] }])
  t.notOk(await found('école'), 'renamed: not by its old name')
  t.ok(await found('dunmore'), 'but by its new one')
  registry.replace(DEMO)
  t.notOk(await found('dunmore'), 'a removal is seen')
})

t.test('the page worker runs at nice 19 under SCHED_IDLE, the public port\'s thread untouched', async (t) => {
  await migration.pages.matrix({ user: USER, freeze: undefined, query: {} })
  const threads = readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Fields 19 and 41 of stat(5), counted from after the command name (which starts at 3).
    return { tid: Number(tid), nice: Number(fields[16]), policy: Number(fields[38]) }
  })
  const idle = threads.filter((thread) => thread.policy === SCHED_IDLE)
  t.equal(idle.length, 1, 'one thread under SCHED_IDLE: the page worker')
  t.equal(idle[0]?.nice, 19, 'at nice 19')
  const main = threads.find((thread) => thread.tid === process.pid)
  t.same({ nice: main?.nice, policy: main?.policy }, { nice: 0, policy: 0 }, 'the main thread keeps its priority')
})
