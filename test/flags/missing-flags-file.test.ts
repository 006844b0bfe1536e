// A flags-file edit that drops route flags moves no school: each dropped flag keeps deciding with
// its last known definition, is logged once, counted, and shown in /readyz and /decisions. Run
// against a real ficus process re-reading its files on SIGHUP (the poll is set to a minute, so
// only the signal can have re-read them), over random subsets of the declared route flags.
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { migratedRoutes } from '../../new-routes/index.ts'
import { spawnFicus, waitFor, writeJson, type FicusProcess } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy } from '../helpers/recording-legacy.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'

const ROUTE_FLAGS = [...new Set(migratedRoutes.map((route) => route.flag))]
const WAIT_MS = 10_000
const MISSING_LOG = 'route flag missing from the flag source: keeping its last known definition'
const BACK_LOG = 'route flag back in the flag source'
const SIGHUP_LOG = 'SIGHUP: flags and tenants files re-read'

/** Every route flag in `flags` on for school-a only. */
function flagsFile (flags: readonly string[]): object {
  return {
    version: 2,
    features: flags.map((name) => ({
      name,
      enabled: true,
      strategies: [{ name: 'default', constraints: [{ contextName: 'tenantId', operator: 'IN', values: ['school-a'] }] }]
    }))
  }
}

interface Decision { route: string, backend: string, reason: string }

async function adminJson (origin: string, path: string): Promise<{ status: number, body: any }> {
  const response = await fetch(origin + path)
  return { status: response.status, body: await response.json() }
}

async function hangUp (ficus: FicusProcess): Promise<void> {
  const before = ficus.logs.filter((line) => line.msg === SIGHUP_LOG).length
  ficus.child.kill('SIGHUP')
  await waitFor(() => ficus.logs.filter((line) => line.msg === SIGHUP_LOG).length > before, WAIT_MS, 'the SIGHUP re-read')
}

const dir = mkdtempSync(join(tmpdir(), 'ficus-missing-flags-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const flagsPath = join(dir, 'flags.json')
const tenantsPath = join(dir, 'tenants.json')
writeJson(flagsPath, flagsFile(ROUTE_FLAGS))
writeJson(tenantsPath, { tenants: [{ id: 'school-a', name: 'A', cohorts: ['pilot'] }, { id: 'school-b', name: 'B' }] })
const legacy = await startRecordingLegacy(t)
const ficus = spawnFicus(t, {
  HOST: '127.0.0.1',
  PORT: '0',
  ADMIN_PORT: '0',
  LEGACY_URL: legacy.url,
  FLAGS_FILE: flagsPath,
  TENANTS_FILE: tenantsPath,
  FLAGS_POLL_MS: '60000',
  PREWARM_LEGACY_CONNECTIONS: '0',
  LOG_LEVEL: 'info'
})
const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
const admin = String(serving.admin)
const origin = String(serving.public)

async function decisions (school: string): Promise<Decision[]> {
  return (await adminJson(admin, `/decisions?tenant=${school}`)).body.routes as Decision[]
}

const baseline = { a: await decisions('school-a'), b: await decisions('school-b') }

t.test('the baseline: every route new for school-a, legacy for school-b', async (t) => {
  t.equal(baseline.a.length, migratedRoutes.length)
  t.ok(baseline.a.every((d) => d.backend === 'new'), JSON.stringify(baseline.a))
  t.ok(baseline.b.every((d) => d.backend === 'legacy'), JSON.stringify(baseline.b))
})

t.test('flags files with random route flags dropped, re-read on SIGHUP, move no school', async (t) => {
  const removals = new Map<string, number>()
  let previous = new Set<string>()
  await fc.assert(fc.asyncProperty(fc.subarray(ROUTE_FLAGS), async (dropped) => {
    writeJson(flagsPath, flagsFile(ROUTE_FLAGS.filter((flag) => !dropped.includes(flag))))
    await hangUp(ficus)
    for (const flag of dropped) if (!previous.has(flag)) removals.set(flag, (removals.get(flag) ?? 0) + 1)
    previous = new Set(dropped)

    const readyz = await adminJson(admin, '/readyz')
    if (readyz.status !== 200) throw new Error(`/readyz ${readyz.status}`)
    const missing = (readyz.body.checks.flags.detail.missingFlags as Array<{ flag: string, routes: string[] }>).map((entry) => entry.flag).sort()
    if (JSON.stringify(missing) !== JSON.stringify([...dropped].sort())) throw new Error(`missingFlags ${JSON.stringify(missing)}, dropped ${JSON.stringify(dropped)}`)
    for (const [school, expected] of [['school-a', baseline.a], ['school-b', baseline.b]] as const) {
      const now = await decisions(school)
      for (const decision of now) {
        const before = expected.find((d) => d.route === decision.route)
        if (decision.backend !== before?.backend) throw new Error(`${school} ${decision.route} moved to ${decision.backend} with ${JSON.stringify(dropped)} dropped`)
        const flag = migratedRoutes.find((route) => route.name === decision.route)?.flag ?? ''
        if (dropped.includes(flag) && !/missing from file .*last known definition/.test(decision.reason)) throw new Error(`/decisions does not say ${flag} is missing: ${decision.reason}`)
      }
    }
    const page = await request(`${origin}/attendance`, { headers: { host: 'school-a.localhost' } })
    await page.body.dump()
    if (page.headers['x-served-by'] !== 'new') throw new Error(`school-a /attendance served by ${String(page.headers['x-served-by'])}`)
  }), { numRuns: 12, examples: [[ROUTE_FLAGS], [[]]] })

  for (const flag of ROUTE_FLAGS) {
    const logged = ficus.logs.filter((line) => line.msg === MISSING_LOG && line.flag === flag).length
    t.equal(logged, removals.get(flag) ?? 0, `${flag}: logged once per disappearance (${logged})`)
  }
  const metrics = parsePrometheusText(await (await fetch(`${admin}/metrics`)).text())
  for (const [flag, count] of removals) t.equal(sampleValue(metrics, 'ficus_flags_missing_total', { flag }), count, `ficus_flags_missing_total{flag="${flag}"}`)
  t.equal(sampleValue(metrics, 'ficus_flags_missing'), previous.size, 'ficus_flags_missing: the flags held now')
  t.ok(ficus.logs.some((line) => line.msg === BACK_LOG), 'a flag that came back is logged')
})

t.test('an empty feature list keeps every route where it was; a broken file keeps the last good flags', async (t) => {
  writeJson(flagsPath, { version: 2, features: [] })
  await hangUp(ficus)
  t.same((await decisions('school-a')).map((d) => d.backend), baseline.a.map((d) => d.backend))
  writeJson(flagsPath, '{ not json')
  await hangUp(ficus)
  t.ok(ficus.logs.some((line) => line.msg === 'flags file rejected, keeping the last good flags'), 'the broken edit is reported')
  t.same((await decisions('school-b')).map((d) => d.backend), baseline.b.map((d) => d.backend))
  writeJson(flagsPath, flagsFile(ROUTE_FLAGS))
  await hangUp(ficus)
  t.same((await adminJson(admin, '/readyz')).body.checks.flags.detail.missingFlags, [], 'all back: nothing held')
})

t.test('SIGHUP re-reads the tenants file and never kills the process', async (t) => {
  t.equal((await adminJson(admin, '/decisions?tenant=school-c')).status, 404, 'school-c unknown')
  writeJson(tenantsPath, { tenants: [{ id: 'school-a', name: 'A', cohorts: ['pilot'] }, { id: 'school-b', name: 'B' }, { id: 'school-c', name: 'C' }] })
  await hangUp(ficus)
  t.equal((await adminJson(admin, '/decisions?tenant=school-c')).status, 200, 'school-c known right after SIGHUP')
  for (let i = 0; i < 5; i++) ficus.child.kill('SIGHUP')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(ficus.child.exitCode, null, 'still running after a burst of SIGHUPs')
  t.equal((await adminJson(admin, '/readyz')).status, 200, 'and ready')
})
