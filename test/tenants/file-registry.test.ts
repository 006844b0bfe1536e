import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileTenantRegistry, parseTenantList } from '../../tenants/file-registry.ts'
import { waitFor, writeJson } from '../helpers/proxy-kit.ts'

const POLL_MS = 50
const WAIT_MS = 5_000

function tempFile (t: { teardown (fn: () => unknown): void }, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-tenants-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'tenants.json')
  writeJson(path, content)
  return path
}

const TWO = { tenants: [{ id: 'school-a', name: 'School A', cohorts: ['pilot'] }, { id: 'school-b', name: 'School B', status: 'maintenance' }] }

t.test('loads the schools of the file, frozen, with defaults for status and cohorts', async (t) => {
  const path = tempFile(t, TWO)
  const registry = new FileTenantRegistry({ path })
  await registry.start()
  t.teardown(() => registry.close())
  t.equal(registry.size, 2)
  t.equal(registry.source, `file ${path}`)
  t.same(registry.get('school-a'), { id: 'school-a', name: 'School A', status: 'active', cohorts: ['pilot'] })
  t.same(registry.get('school-b'), { id: 'school-b', name: 'School B', status: 'maintenance', cohorts: [] })
  t.equal(registry.get('school-z'), undefined)
  t.ok(Object.isFrozen(registry.get('school-a')))
  t.same([...registry.all()].map((tenant) => tenant.id), ['school-a', 'school-b'])
})

t.test('an edit of the file is picked up without a restart', async (t) => {
  const path = tempFile(t, TWO)
  const reloads: number[] = []
  const registry = new FileTenantRegistry({ path, pollIntervalMs: POLL_MS, onReload: (count) => reloads.push(count) })
  await registry.start()
  t.teardown(() => registry.close())
  const version = registry.version
  writeJson(path, { tenants: [...TWO.tenants, { id: 'school-c', name: 'School C' }] })
  await waitFor(() => registry.get('school-c') !== undefined, WAIT_MS, 'school-c to appear')
  t.equal(registry.size, 3)
  t.same(reloads, [3])
  t.not(registry.version, version, 'the version moved with the snapshot')
})

t.test('a broken edit keeps the last good list and says why', async (t) => {
  const path = tempFile(t, TWO)
  const invalid: Error[] = []
  const registry = new FileTenantRegistry({ path, pollIntervalMs: POLL_MS, onInvalid: (error) => invalid.push(error) })
  await registry.start()
  t.teardown(() => registry.close())

  const version = registry.version
  writeJson(path, '{ "tenants": [ { "id": "school-a", ')
  await waitFor(() => invalid.length === 1, WAIT_MS, 'the invalid JSON to be reported')
  t.match(invalid[0]?.message, /not valid JSON/)
  t.equal(registry.size, 2)

  writeJson(path, { tenants: [{ id: 'School A', name: '' }] })
  await waitFor(() => invalid.length === 2, WAIT_MS, 'the invalid list to be reported')
  t.match(invalid[1]?.message, /tenants\[0\]\.id/)
  t.equal(registry.size, 2)
  t.ok(registry.get('school-a'))
  t.equal(registry.version, version, 'a refused edit leaves the version as it was')

  writeJson(path, { tenants: [{ id: 'school-c', name: 'School C' }] })
  await waitFor(() => registry.get('school-c') !== undefined, WAIT_MS, 'the next good edit')
  t.equal(registry.size, 1)
  t.equal(invalid.length, 2, 'each bad edit reported once')
})

t.test('start fails when the first read fails: there is nothing to serve from', async (t) => {
  const broken = new FileTenantRegistry({ path: tempFile(t, '{ nope') })
  await t.rejects(broken.start(), /not valid JSON/)
  const missing = new FileTenantRegistry({ path: join(tmpdir(), 'ficus-no-such-dir', 'tenants.json') })
  await t.rejects(missing.start(), /ENOENT/)
})

t.test('every problem of a tenant list is reported at once, with its position', async (t) => {
  let message = ''
  try {
    parseTenantList({ tenants: [
      { id: 'school-a', name: 'A' },
      { id: 'School_B', name: '' },
      { id: 'school-a', name: 'A again' },
      { id: 'school-c', name: 'C', status: 'closed', cohorts: ['', 3] },
      'nope'
    ] })
  } catch (error) {
    message = (error as Error).message
  }
  t.match(message, /tenants\[1\]\.id must be a lower-case DNS label/)
  t.match(message, /tenants\[1\]\.name/)
  t.match(message, /tenants\[2\]\.id "school-a" is listed twice/)
  t.match(message, /tenants\[3\]\.status must be one of active, maintenance, suspended/)
  t.match(message, /tenants\[3\]\.cohorts/)
  t.match(message, /tenants\[4\] must be an object/)
  t.throws(() => parseTenantList([]), /"tenants" array/)
  t.throws(() => parseTenantList(null), /"tenants" array/)
})
