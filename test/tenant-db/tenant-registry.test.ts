// `request.tenant.db`: the registry wrapper binds each school's database handle once per
// snapshot, so the per-request `get` allocates nothing and a handler sees only its own school.
import t from 'tap'
import { PgTenantDatabases } from '../../tenant-db/pg-databases.ts'
import { tenantDatabase, withTenantDatabases } from '../../tenant-db/tenant-registry.ts'
import { ListRegistry } from '../helpers/tenant-databases.ts'

const OPTIONS = { poolsMax: 2, poolSize: 1, statementTimeoutMs: 1_000, connectTimeoutMs: 1_000, poolIdleMs: 1_000 }
const A = { id: 'school-a', name: 'School A', status: 'active', cohorts: ['pilot'], databaseUrl: 'postgres://postgres@127.0.0.1:5432/a' } as const
const B = { id: 'school-b', name: 'School B', status: 'active', cohorts: [] } as const

t.test('a tenant comes with its own db, the same object on every get of a snapshot', async (t) => {
  const inner = new ListRegistry([A, B])
  const registry = withTenantDatabases(inner, new PgTenantDatabases(OPTIONS))
  t.teardown(() => registry.close())
  const a = registry.get('school-a')
  t.equal(registry.get('school-a'), a, 'no new object per request')
  t.equal(a?.db.tenantId, 'school-a')
  t.equal(registry.get('school-b')?.db.tenantId, 'school-b')
  t.same(a, A, 'the tenant fields are those of the registry; db is not enumerable')
  t.ok(Object.isFrozen(a))
  t.equal(tenantDatabase(a!), a?.db)
  t.equal(registry.get('school-z'), undefined)
  t.same([...registry.all()].map((tenant) => tenant.db.tenantId), ['school-a', 'school-b'])
  t.equal(registry.size, 2)
  t.equal(registry.source, 'test list')
})

t.test('a new snapshot gives new tenant objects bound to the new settings', async (t) => {
  const inner = new ListRegistry([A])
  const registry = withTenantDatabases(inner, new PgTenantDatabases(OPTIONS))
  t.teardown(() => registry.close())
  const before = registry.get('school-a')
  inner.replace([{ ...A, status: 'maintenance' }])
  const after = registry.get('school-a')
  t.not(after, before)
  t.equal(after?.status, 'maintenance')
  t.not(after?.db, before?.db)
})

t.test('a school without a database URL fails its queries with a clear error', async (t) => {
  const registry = withTenantDatabases(new ListRegistry([B]), new PgTenantDatabases(OPTIONS))
  t.teardown(() => registry.close())
  await t.rejects(registry.get('school-b')!.db.query('SELECT 1'), { code: 'FICUS_ERR_TENANT_DB_UNCONFIGURED', statusCode: 500 })
})

t.test('a tenant of an unwrapped registry has no db, and asking for it says why', async (t) => {
  t.throws(() => tenantDatabase(B), { code: 'FICUS_ERR_TENANT_DB_UNCONFIGURED' })
})
