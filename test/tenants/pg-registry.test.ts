// The tenant registry in the control database: read whole into memory, and following changes
// within seconds through LISTEN/NOTIFY (with a periodic full reload as the safety net).
import t from 'tap'
import { PgTenantRegistry } from '../../tenants/pg-registry.ts'
import { createControlDatabase, insertTenants, PG_HOST_URL, waitFor, withAdmin, testDatabasePrefix } from '../helpers/tenant-databases.ts'

t.setTimeout(60_000)

const PREFIX = testDatabasePrefix('ficus_t_pgreg')
const SEEN_WITHIN_MS = 5_000
const controlUrl = await createControlDatabase(t, PREFIX)
const control = (sql: string, values: unknown[] = []) => withAdmin((client) => client.query(sql, values), controlUrl)

await insertTenants(controlUrl, [
  { id: 'school-a', name: 'School A', databaseUrl: `${PG_HOST_URL}/school_a`, cohorts: ['pilot', 'wave-1'] },
  { id: 'school-b', name: 'School B', databaseName: 'school_b', status: 'maintenance' },
  { id: 'school-c', name: 'School C' }
])

async function started (t: Tap, options: Partial<ConstructorParameters<typeof PgTenantRegistry>[0]> = {}) {
  const registry = new PgTenantRegistry({ databaseUrl: controlUrl, databaseUrlTemplate: 'postgres://ficus:secret@db.internal:5432/{database}', ...options })
  await registry.start()
  t.teardown(() => registry.close())
  return registry
}
type Tap = { teardown (fn: () => unknown): void }

t.test('serves the tenants table from memory, frozen, with database URLs from the row or the template', async (t) => {
  const registry = await started(t)
  t.equal(registry.size, 3)
  t.same(registry.get('school-a'), { id: 'school-a', name: 'School A', status: 'active', cohorts: ['pilot', 'wave-1'], databaseUrl: `${PG_HOST_URL}/school_a` })
  t.same(registry.get('school-b'), { id: 'school-b', name: 'School B', status: 'maintenance', cohorts: [], databaseUrl: 'postgres://ficus:secret@db.internal:5432/school_b' })
  t.same(registry.get('school-c'), { id: 'school-c', name: 'School C', status: 'active', cohorts: [] }, 'no URL when the row gives none')
  t.equal(registry.get('school-z'), undefined)
  t.ok(Object.isFrozen(registry.get('school-a')) && Object.isFrozen(registry.get('school-a')?.cohorts))
  t.same([...registry.all()].map((tenant) => tenant.id), ['school-a', 'school-b', 'school-c'])
  t.ok(registry.source.startsWith(`postgres postgres://postgres@127.0.0.1:5432/${PREFIX}ctl`), registry.source)
})

t.test('a school moved to maintenance and a new school are seen within 5 s, without a restart', async (t) => {
  const registry = await started(t)
  const before = registry.get('school-c')
  const startedAt = Date.now()
  await control("UPDATE tenants SET status = 'maintenance' WHERE id = 'school-c'")
  await insertTenants(controlUrl, [{ id: 'school-new', name: 'New School' }])
  await waitFor(() => registry.get('school-c')?.status === 'maintenance' && registry.get('school-new') !== undefined, SEEN_WITHIN_MS, 'the changes')
  t.ok(Date.now() - startedAt < SEEN_WITHIN_MS, `seen after ${Date.now() - startedAt} ms`)
  t.not(registry.get('school-c'), before, 'the snapshot was replaced, not edited')
  t.equal(before?.status, 'active', 'the old snapshot object is untouched')

  await control("DELETE FROM tenants WHERE id = 'school-new'")
  await control("UPDATE tenants SET status = 'active' WHERE id = 'school-c'")
  await waitFor(() => registry.get('school-new') === undefined && registry.get('school-c')?.status === 'active', SEEN_WITHIN_MS, 'the removal')
  t.pass('a removed school disappears')
})

t.test('an unchanged school keeps the same object across reloads', async (t) => {
  const registry = await started(t)
  const a = registry.get('school-a')
  const version = registry.version
  await registry.reload()
  t.equal(registry.version, version, 'a reload that changed nothing leaves the version')
  await control("UPDATE tenants SET name = 'School B, renamed' WHERE id = 'school-b'")
  t.teardown(() => control("UPDATE tenants SET name = 'School B' WHERE id = 'school-b'"))
  await waitFor(() => registry.get('school-b')?.name === 'School B, renamed', SEEN_WITHIN_MS, 'the rename')
  t.equal(registry.get('school-a'), a)
  t.not(registry.version, version, 'the rename moved the version')
  const renamed = registry.version
  await control("DELETE FROM tenants WHERE id = 'school-c'")
  t.teardown(() => insertTenants(controlUrl, [{ id: 'school-c', name: 'School C' }]))
  await waitFor(() => registry.get('school-c') === undefined, SEEN_WITHIN_MS, 'the removal')
  t.not(registry.version, renamed, 'a removal moves it too')
})

t.test('after losing its connection, the registry reconnects and catches up with what it missed', async (t) => {
  const errors: Error[] = []
  const registry = await started(t, { onError: (error) => errors.push(error) })
  const killed = await control("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ficus-registry'", [`${PREFIX}ctl`])
  t.ok((killed.rowCount ?? 0) >= 1, 'the listening connection was terminated')
  await control("UPDATE tenants SET cohorts = '{wave-2}' WHERE id = 'school-c'")
  t.teardown(() => control("UPDATE tenants SET cohorts = '{}' WHERE id = 'school-c'"))
  await waitFor(() => registry.get('school-c')?.cohorts[0] === 'wave-2', SEEN_WITHIN_MS, 'the change made while disconnected')
  t.ok(errors.length >= 1, 'the loss was reported')
})

t.test('without LISTEN, the periodic reload still picks changes up', async (t) => {
  const registry = await started(t, { listen: false, refreshMs: 200 })
  await control("UPDATE tenants SET name = 'School A (polled)' WHERE id = 'school-a'")
  t.teardown(() => control("UPDATE tenants SET name = 'School A' WHERE id = 'school-a'"))
  await waitFor(() => registry.get('school-a')?.name === 'School A (polled)', SEEN_WITHIN_MS, 'the polled change')
  t.pass()
})

t.test('start fails with a registry error when the control database cannot be read', async (t) => {
  const registry = new PgTenantRegistry({ databaseUrl: `${PG_HOST_URL}/${PREFIX}_missing`, connectTimeoutMs: 2_000 })
  t.teardown(() => registry.close())
  await t.rejects(registry.start(), { code: 'FICUS_ERR_PG_REGISTRY_UNAVAILABLE', statusCode: 503 })
})
