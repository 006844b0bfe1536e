// Several ficus processes (separate processes, not WORKERS) behind one balancer, as the cluster
// runs them: they serve the same decisions. A flip of the flags file and a flip in a real
// Unleash server reach all three within 2 s; a session written through one is read through the
// others (one Redis; the user signed in as the legacy leaves them, CSRF token included); a school
// added or put in maintenance in the control database reaches all three through NOTIFY; and a
// rolling restart of all three, one at a time, under steady load, fails no request.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Pool } from 'undici'
import { TestBalancer } from '../helpers/balancer.ts'
import { configureFlag, declareContextFields, declaredRoute, startFicus, type RunningFicus } from '../helpers/ficus-process.ts'
import { startLoad } from '../helpers/load-loop.ts'
import { flagsOnFor, spawnFicus, writeJson, type FicusProcess } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, waitFor, within, type TeardownHost } from '../helpers/recording-legacy.ts'
import { signedInSessions } from '../helpers/signed-in.ts'
import { createControlDatabase, insertTenants, testDatabasePrefix, withAdmin } from '../helpers/tenant-databases.ts'
import { constraintIn, defaultStrategy, startUnleash } from '../helpers/unleash.ts'

const REPLICAS = 3
// The bound for a flip to reach every replica.
const FLIP_BOUND_MS = 2_000
const FLIP_WAIT_MS = 10_000
const REGISTRY_BOUND_MS = 2_000
const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 30_000
const DRAIN_DELAY_MS = 1_000
const LOAD_RATE = 120
const POLL_MS = 10
const attendance = declaredRoute('attendance.page')

interface Replica {
  readonly name: string
  readonly process: FicusProcess
  readonly origin: string
  readonly adminOrigin: string
  readonly pool: Pool
}

interface Answer { readonly status: number, readonly servedBy: string | undefined, readonly body: string }

async function send (pool: Pool, school: string, path: string, init: { method?: 'GET' | 'PUT', cookie?: string, json?: unknown, headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers, host: `${school}.localhost` }
  if (init.cookie !== undefined) headers.cookie = init.cookie
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  const answer = await pool.request({ method: init.method ?? 'GET', path, headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) })
  const servedBy = answer.headers['x-served-by']
  return { status: answer.statusCode, servedBy: Array.isArray(servedBy) ? servedBy[0] : servedBy, body: await answer.body.text() }
}

/** Polls `pool` until `holds`; resolves with the ms since `since`. */
async function until (pool: Pool, school: string, path: string, holds: (answer: Answer) => boolean, since: number, timeoutMs: number): Promise<number> {
  let last: Answer | undefined
  while (performance.now() - since < timeoutMs) {
    last = await send(pool, school, path)
    if (holds(last)) return performance.now() - since
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  throw new Error(`${school} ${path}: still ${last?.status ?? '-'} ${last?.servedBy ?? ''} after ${timeoutMs} ms`)
}

function flagsFor (attendanceSchools: readonly string[]): object {
  const features = [flagsOnFor(attendanceSchools), flagsOnFor(['school-a', 'school-b'], 'me')]
    .flatMap((flags) => (flags as { features: unknown[] }).features)
  return { version: 2, features }
}

t.test('three replicas on one flags file, one Redis and one control database', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-replicas-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  writeJson(flagsFile, flagsFor(['school-a']))
  const controlUrl = await createControlDatabase(t, testDatabasePrefix('replicas'))
  await insertTenants(controlUrl, [{ id: 'school-a', cohorts: ['pilot'] }, { id: 'school-b' }])
  // One Redis for all three: the session and its CSRF token are written once, for every replica.
  const sessions = await signedInSessions(t, ['school-a'])
  const legacy = await startRecordingLegacy(t)
  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    LEGACY_URL: legacy.url,
    FLAGS_FILE: flagsFile,
    DATABASE_URL: controlUrl,
    ...sessions.env,
    // The restart is under test here, not Redis latency: on a busy test machine the 300 ms
    // production budget for a session read can run out while a neighbour replica starts.
    SESSION_REDIS_TIMEOUT_MS: '3000',
    DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
    SHUTDOWN_TIMEOUT_MS: '20000',
    PREWARM_LEGACY_CONNECTIONS: '0',
    LOG_LEVEL: 'info'
  }
  let started = 0
  const startReplica = async (t: TeardownHost): Promise<Replica> => {
    const name = `ficus-${++started}`
    const process = spawnFicus(t, env)
    const serving = await process.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving', READY_TIMEOUT_MS)
    const origin = String(serving.public)
    const pool = new Pool(origin, { connections: 4 })
    t.teardown(() => pool.destroy())
    return { name, process, origin, adminOrigin: String(serving.admin), pool }
  }
  let replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startReplica(t)))
  const balancer = new TestBalancer(t)
  await balancer.listen()
  for (const replica of replicas) balancer.add(replica.name, replica.origin, replica.adminOrigin)
  await waitFor(() => replicas.every((replica) => balancer.isReady(replica.name)), READY_TIMEOUT_MS, 'every replica ready behind the balancer')
  const front = new Pool(balancer.origin, { connections: 4 })
  t.teardown(() => front.destroy())

  t.test(`a flags file flip is served by all ${REPLICAS} within ${FLIP_BOUND_MS} ms`, async (t) => {
    for (const replica of replicas) t.equal((await send(replica.pool, 'school-b', attendance.url)).servedBy, 'legacy', `${replica.name}: school-b on legacy`)
    for (const [schools, side] of [[['school-a', 'school-b'], 'new'], [['school-a'], 'legacy']] as const) {
      const written = performance.now()
      writeJson(flagsFile, flagsFor(schools))
      const latencies = await Promise.all(replicas.map((replica) =>
        until(replica.pool, 'school-b', attendance.url, (answer) => answer.servedBy === side, written, FLIP_WAIT_MS)))
      t.ok(latencies.every((ms) => ms <= FLIP_BOUND_MS), `school-b to ${side}: seen after ${latencies.map(Math.round).join(' / ')} ms`)
      for (const replica of replicas) t.equal((await send(replica.pool, 'school-a', attendance.url)).servedBy, 'new', `${replica.name}: school-a unchanged`)
    }
  })

  t.test('a session written through one replica is read through the others', async (t) => {
    const cookie = sessions.cookie('school-a')
    const [first, ...others] = replicas as [Replica, ...Replica[]]
    const written = await send(first.pool, 'school-a', '/me/preferences', { method: 'PUT', cookie, json: { theme: 'dark' }, headers: sessions.csrfHeaders('school-a', 'school-a.localhost') })
    t.equal(written.status, 200, `PUT through ${first.name}: ${written.body}`)
    for (const replica of others) {
      const read = await send(replica.pool, 'school-a', '/me', { cookie })
      t.same(JSON.parse(read.body), { user: 'teacher-of-school-a', roles: ['teacher'], school: 'school-a', preferences: { theme: 'dark' } }, `${replica.name} reads what ${first.name} wrote`)
      t.equal((await send(replica.pool, 'school-b', '/me', { cookie })).status, 401, `${replica.name}: not a session of school-b`)
    }
  })

  t.test(`a registry change reaches all ${REPLICAS} through NOTIFY within ${REGISTRY_BOUND_MS} ms`, async (t) => {
    for (const replica of replicas) t.equal((await send(replica.pool, 'school-c', '/')).status, 404, `${replica.name}: school-c unknown`)
    let since = performance.now()
    await insertTenants(controlUrl, [{ id: 'school-c' }])
    const added = await Promise.all(replicas.map((replica) => until(replica.pool, 'school-c', '/', (answer) => answer.status === 200, since, FLIP_WAIT_MS)))
    t.ok(added.every((ms) => ms <= REGISTRY_BOUND_MS), `school-c served after ${added.map(Math.round).join(' / ')} ms`)
    since = performance.now()
    await withAdmin((client) => client.query("UPDATE tenants SET status = 'maintenance' WHERE id = 'school-c'"), controlUrl)
    const maintenance = await Promise.all(replicas.map((replica) => until(replica.pool, 'school-c', '/', (answer) => answer.status === 503, since, FLIP_WAIT_MS)))
    t.ok(maintenance.every((ms) => ms <= REGISTRY_BOUND_MS), `school-c in maintenance after ${maintenance.map(Math.round).join(' / ')} ms`)
  })

  t.test(`a rolling restart of all ${REPLICAS}, one at a time, under steady load: zero failed requests`, async (t) => {
    const load = startLoad({
      origin: balancer.origin,
      workers: 6,
      ratePerSecond: LOAD_RATE,
      targets: [
        // school-a's page is the new handler, for teachers only: every replica, old and new, reads
        // the signed-in session from the one Redis.
        { host: 'school-a.localhost', path: attendance.url, headers: { cookie: sessions.cookie('school-a') } },
        { host: 'school-b.localhost', path: attendance.url },
        { host: 'school-a.localhost', path: '/reports?term=2' }
      ]
    })
    t.teardown(() => load.stop())
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const exits: Array<{ code: number | null, signal: NodeJS.Signals | null }> = []
    const restarted: Replica[] = []
    for (const old of replicas) {
      // As a Deployment with maxUnavailable 0 does it: the new pod first, then the old one drains.
      const replacement = await startReplica(t)
      balancer.add(replacement.name, replacement.origin, replacement.adminOrigin)
      await waitFor(() => balancer.isReady(replacement.name), READY_TIMEOUT_MS, `${replacement.name} ready`)
      old.process.child.kill('SIGTERM')
      exits.push(await within(old.process.exited, EXIT_TIMEOUT_MS, `${old.name} to exit`))
      await balancer.remove(old.name)
      restarted.push(replacement)
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const result = await load.stop()
    replicas = restarted
    t.comment(`load: ${JSON.stringify(result)}; balancer forwarded ${JSON.stringify(balancer.stats.forwarded)}`)
    t.same(exits, Array.from({ length: REPLICAS }, () => ({ code: 0, signal: null })), 'every old replica drained and exited 0')
    t.ok(result.sent > LOAD_RATE * 3, `a steady load was sent (${result.sent} requests)`)
    t.equal(result.ok, result.sent, 'zero failed requests')
    t.same(result.errors, {}, 'zero connection errors at the client')
    t.same(balancer.stats.upstreamErrors, [], 'zero errors between the balancer and ficus')
    t.equal(balancer.stats.noBackend, 0, 'never without a ready backend')
    for (const replica of restarted) t.ok((balancer.stats.forwarded[replica.name] ?? 0) > 0, `${replica.name} served`)
    for (const replica of restarted) t.equal((await send(replica.pool, 'school-a', attendance.url)).servedBy, 'new', `${replica.name} serves the same decision`)
  })
})

t.test(`a flip in a real Unleash server is served by all ${REPLICAS} within ${FLIP_BOUND_MS} ms`, async (t) => {
  const unleash = await startUnleash(t)
  await declareContextFields(unleash)
  await configureFlag(unleash, attendance.flag, { enabled: false, strategies: [defaultStrategy([constraintIn('tenantId', ['school-a'])])] })
  const legacy = await startRecordingLegacy(t)
  const schools = [{ id: 'school-a' }, { id: 'school-b' }]
  const replicas: RunningFicus[] = await Promise.all(Array.from({ length: REPLICAS }, () => startFicus(t, { unleash, schools, legacy })))
  for (const [step, side] of [['on', 'new'], ['off', 'legacy']] as const) {
    const clicked = performance.now()
    if (step === 'on') await unleash.admin.enable(attendance.flag, unleash.environment)
    else await unleash.admin.disable(attendance.flag, unleash.environment)
    const latencies = await Promise.all(replicas.map(async (replica) => {
      await replica.waitForSide('school-a', attendance.url, side, FLIP_WAIT_MS)
      return performance.now() - clicked
    }))
    t.ok(latencies.every((ms) => ms <= FLIP_BOUND_MS), `flip ${step}: school-a served by ${side} on every replica after ${latencies.map(Math.round).join(' / ')} ms (from the Admin API call)`)
    for (const replica of replicas) t.equal((await replica.get('school-b', attendance.url)).servedBy, 'legacy', 'school-b is not moved')
  }
})
