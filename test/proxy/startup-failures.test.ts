// What an operator can get wrong outside the variables' syntax ends startup the same way a bad
// variable does: one message naming the variable (and the file), exit code 1, no stack trace.
// Real ficus processes; broken tenants files are generated.
import t from 'tap'
import fc from 'fast-check'
import type { Test } from 'tap'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseTenantList } from '../../tenants/file-registry.ts'
import { DEFAULT_TENANTS, flagsOnFor, spawnFicus, writeJson } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, within, type TeardownHost } from '../helpers/recording-legacy.ts'

const dir = mkdtempSync(join(tmpdir(), 'ficus-startup-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const goodTenants = join(dir, 'tenants.json')
const goodFlags = join(dir, 'flags.json')
writeJson(goodTenants, DEFAULT_TENANTS)
writeJson(goodFlags, flagsOnFor(['school-a']))
const legacy = await startRecordingLegacy(t)

const base = (): Record<string, string> => ({
  HOST: '127.0.0.1',
  PORT: '0',
  ADMIN_PORT: '0',
  LEGACY_URL: legacy.url,
  TENANTS_FILE: goodTenants,
  FLAGS_FILE: goodFlags,
  PREWARM_LEGACY_CONNECTIONS: '0'
})

async function occupiedPort (t: TeardownHost): Promise<number> {
  const server: Server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return (server.address() as AddressInfo).port
}

async function failsWith (t: Test, env: Record<string, string>, message: RegExp): Promise<void> {
  const ficus = spawnFicus(t, env)
  const exit = await ficus.exited
  const stderr = ficus.stderr()
  t.equal(exit.code, 1, 'exit code 1')
  const lines = stderr.split('\n').filter((line) => line.trim() !== '')
  t.equal(lines.length, 1, `one line on stderr: ${stderr.slice(0, 600)}`)
  t.match(lines[0] ?? '', message)
  t.notMatch(stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace')
}

t.test('PORT already in use', async (t) => {
  const port = await occupiedPort(t)
  await failsWith(t, { ...base(), PORT: String(port) }, new RegExp(`^ficus: cannot start: PORT=${port}: the port is already in use on 127\\.0\\.0\\.1.*e\\.g\\. PORT=`))
})

t.test('ADMIN_PORT already in use', async (t) => {
  const port = await occupiedPort(t)
  await failsWith(t, { ...base(), ADMIN_PORT: String(port) }, new RegExp(`^ficus: cannot start: ADMIN_PORT=${port}: the port is already in use`))
})

t.test('DEMO_LEGACY_PORT already in use (the embedded legacy app)', async (t) => {
  const port = await occupiedPort(t)
  const env = base()
  delete env.LEGACY_URL
  await failsWith(t, { ...env, DEMO_LEGACY_PORT: String(port) }, new RegExp(`^ficus: cannot start: DEMO_LEGACY_PORT=${port}: the port is already in use`))
})

// Broken tenants files: not JSON, the wrong shape, or entries that break one rule each.
const badEntry = fc.oneof(
  fc.record({ id: fc.constantFrom('School A', '', '-x', 'a_b', 'ü'), name: fc.constant('X') }),
  fc.record({ id: fc.constant('school-z'), name: fc.constantFrom('', 7, null) }),
  fc.record({ id: fc.constant('school-z'), name: fc.constant('Z'), status: fc.constantFrom('closed', 'ACTIVE', 1) }),
  fc.record({ id: fc.constant('school-z'), name: fc.constant('Z'), cohorts: fc.constantFrom('pilot', [1], ['']) }),
  fc.constantFrom(null, 42, 'school-z', [])
)
const brokenTenantsFile = fc.oneof(
  fc.string({ minLength: 1, maxLength: 40 }).filter((text) => { try { JSON.parse(text); return false } catch { return true } }),
  fc.jsonValue().filter((value) => !(typeof value === 'object' && value !== null && Array.isArray((value as { tenants?: unknown }).tenants))).map((value) => JSON.stringify(value)),
  fc.tuple(fc.array(fc.constant({ id: 'school-a', name: 'A' }), { maxLength: 2 }), badEntry).map(([good, bad]) => JSON.stringify({ tenants: [...good, bad] }))
).filter((text) => { try { parseTenantList(JSON.parse(text)); return false } catch { return true } })

t.test('a broken tenants file: one message naming TENANTS_FILE and the file', async (t) => {
  const samples = fc.sample(brokenTenantsFile, { numRuns: 4 })
  for (const [index, content] of samples.entries()) {
    const path = join(dir, `broken-tenants-${index}.json`)
    writeJson(path, content)
    t.comment(`tenants file: ${content.slice(0, 80)}`)
    await failsWith(t, { ...base(), TENANTS_FILE: path }, new RegExp(`^ficus: cannot start: TENANTS_FILE=${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a valid tenants file: `))
  }
})

t.test('a broken flags file: one message naming FLAGS_FILE and the file', async (t) => {
  const path = join(dir, 'broken-flags.json')
  writeJson(path, JSON.stringify({ version: 2, features: [{ name: 'x', enabled: 'yes', strategies: [] }] }))
  await failsWith(t, { ...base(), FLAGS_FILE: path }, /^ficus: cannot start: FLAGS_FILE=.*broken-flags\.json: not a valid flags file: .*"enabled" must be true or false/)
})

t.test('WORKERS=2 with PORT already in use: the primary stops instead of restarting workers forever', async (t) => {
  const port = await occupiedPort(t)
  const ficus = spawnFicus(t, { ...base(), PORT: String(port), WORKERS: '2' })
  const exit = await within(ficus.exited, 20_000, 'the cluster to exit')
  t.equal(exit.code, 1, 'the whole cluster exits 1')
  t.match(ficus.stderr(), new RegExp(`ficus: cannot start: PORT=${port}: the port is already in use`))
  t.notMatch(ficus.stderr(), /\n\s+at .+:\d+:\d+/, 'no stack trace')
  t.notOk(ficus.logs.some((line) => line.msg === 'worker exited: starting another'), 'no worker restarted')
})
