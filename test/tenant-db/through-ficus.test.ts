// Per-school databases behind a real ficus process: the registry in the control database, each
// school's attendance register answered from its own database, registry changes picked up live.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { signedInSessions } from '../helpers/signed-in.ts'
import { closedPort, flagsOnFor, spawnFicus, writeJson, type LogLine } from '../helpers/proxy-kit.ts'
import { classNameOf, createControlDatabase, createSchoolDatabases, insertTenants, waitFor, withAdmin, SEEDED_CLASS, testDatabasePrefix } from '../helpers/tenant-databases.ts'

const PREFIX = testDatabasePrefix('ficus_thru')
// The issue's bound for a registry change to reach a running ficus.
const REGISTRY_CHANGE_MS = 5_000

t.test('each school is answered from its own database, and registry changes reach the running process', async (t) => {
  const schools = await createSchoolDatabases(t, PREFIX, 3)
  const controlUrl = await createControlDatabase(t, PREFIX)
  await insertTenants(controlUrl, schools.slice(0, 2).map((school) => ({ id: school.id, databaseUrl: school.url })))

  const dir = mkdtempSync(join(tmpdir(), 'ficus-thru-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  writeJson(flagsFile, flagsOnFor(schools.map((school) => school.id), 'attendance-register'))
  // The register is for teachers: one signed in on each school, in the shared session store.
  const teachers = await signedInSessions(t, schools.map((school) => school.id))
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    LEGACY_URL: `http://127.0.0.1:${await closedPort()}`,
    BASE_DOMAIN: 'localhost',
    FLAGS_FILE: flagsFile,
    DATABASE_URL: controlUrl,
    TENANT_POOLS_MAX: '2',
    TENANT_POOL_SIZE: '1',
    ...teachers.env
  })
  const serving: LogLine = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  // Until the pre-warm has opened its pools, TENANT_POOLS_MAX=2 may leave none for a request (503 busy).
  await ficus.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done')
  const origin = String(serving.public)
  const register = async (school: string) => {
    const res = await request(`${origin}/attendance/${SEEDED_CLASS}?date=2026-11-27`, { headers: { host: `${school}.localhost`, accept: 'application/json', cookie: teachers.cookie(school) } })
    const text = await res.body.text()
    return { status: res.statusCode, servedBy: res.headers['x-served-by'], body: text.startsWith('{') ? JSON.parse(text) as { className?: string, error?: { code?: string } } : {} }
  }

  for (const school of schools.slice(0, 2)) {
    const answer = await register(school.id)
    t.equal(answer.status, 200, `${school.id} is served${answer.body.error?.code === undefined ? '' : ` (got ${answer.body.error.code})`}`)
    t.equal(answer.servedBy, 'new')
    t.equal(answer.body.className, classNameOf(school.id), `${school.id}'s register comes from its own database`)
  }
  const newcomer = schools[2]
  if (newcomer === undefined) throw new Error('three schools were created')
  t.equal((await register(newcomer.id)).status, 404, 'a school not in the registry is unknown')

  const started = Date.now()
  await insertTenants(controlUrl, [{ id: newcomer.id, databaseUrl: newcomer.url }])
  await withAdmin((client) => client.query("UPDATE tenants SET status = 'maintenance' WHERE id = $1", [schools[0]?.id]), controlUrl)
  await waitFor(async () => (await register(newcomer.id)).status === 200 && (await register(schools[0]?.id ?? '')).status === 503, REGISTRY_CHANGE_MS, 'the registry change to reach ficus')
  t.comment(`registry change seen after ${Date.now() - started} ms`)
  const maintenance = await register(schools[0]?.id ?? '')
  t.equal(maintenance.status, 503, 'a school moved to maintenance gets 503')
  t.equal((await register(newcomer.id)).body.className, classNameOf(newcomer.id), 'the new school answers from its own database')
  t.equal((await register(schools[1]?.id ?? '')).status, 200, 'other schools are unaffected by one school\'s maintenance')
})
