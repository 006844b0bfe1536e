// The control database pins a school to a legacy shard with the `legacy` column of `tenants`
// (migrations/control/003_tenant_legacy.sql): the registry reads it, follows a move within
// seconds like any other change, and the database refuses a value that names no shard.
import t from 'tap'
import { PgTenantRegistry } from '../../tenants/pg-registry.ts'
import { createControlDatabase, insertTenants, testDatabasePrefix, waitFor, withAdmin } from '../helpers/tenant-databases.ts'

t.setTimeout(60_000)

const PREFIX = testDatabasePrefix('ficus_t_shard')
const controlUrl = await createControlDatabase(t, PREFIX)
const control = (sql: string, values: unknown[] = []) => withAdmin((client) => client.query(sql, values), controlUrl)
await insertTenants(controlUrl, [{ id: 'school-a', name: 'School A' }, { id: 'school-n', name: 'School N' }])
await control("UPDATE tenants SET legacy = 'north' WHERE id = 'school-n'")

t.test('the legacy column pins a school to its shard, and a move is followed', async (t) => {
  const registry = new PgTenantRegistry({ databaseUrl: controlUrl })
  await registry.start()
  t.teardown(() => registry.close())
  t.equal(registry.get('school-n')?.legacy, 'north')
  t.equal(registry.get('school-a')?.legacy, undefined, 'NULL: the main legacy table')
  await control("UPDATE tenants SET legacy = 'south' WHERE id = 'school-a'")
  await waitFor(() => registry.get('school-a')?.legacy === 'south', 5_000, 'the move to south')
  t.pass('moved without a restart')
})

t.test('a value that is no shard name is refused by the table', async (t) => {
  await t.rejects(control("UPDATE tenants SET legacy = 'North Shard!' WHERE id = 'school-a'"), /check constraint/)
})
