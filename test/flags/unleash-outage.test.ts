// ficus when its Unleash server goes away: it keeps the last flags and says how stale they are;
// it never decides with flags it does not have; and it shuts down cleanly whatever the client
// is doing at the time.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  configureFlag,
  declareContextFields,
  declaredRoute,
  sleep,
  startFicus,
  type Readyz,
  type RunningFicus,
  type School
} from '../helpers/ficus-process.ts'
import { closedPort, flagsOnFor, PROJECT_ROOT, waitFor, writeJson } from '../helpers/proxy-kit.ts'
import { constraintIn, defaultStrategy, startUnleash } from '../helpers/unleash.ts'

const attendance = declaredRoute('attendance.page')
const SCHOOLS: readonly School[] = [{ id: 'school-a', cohorts: ['pilot'] }, { id: 'school-b' }]
const UNREACHABLE_WAIT_MS = 20_000
const FLIP_WAIT_MS = 15_000
const READY_WAIT_MS = 30_000
// Long enough for the client to fail several polls (a refused poll reports after ~3-4 s of retries).
const OUTAGE_MIN_MS = 9_000
const NOT_READY_OBSERVE_MS = 2_000
const CHILD_TIMEOUT_MS = 20_000
const UNREACHABLE_LOG = 'flag source unreachable: keeping the last known flags'
const REACHABLE_LOG = 'flag source reachable again'

const unleash = await startUnleash(t)
t.comment(`unleash-server started in ${unleash.lastStartMs} ms`)
await declareContextFields(unleash)

const flagsDetail = (readyz: Readyz): Readyz['body']['checks']['flags']['detail'] => readyz.body.checks.flags.detail
const attendanceRequests = (ficus: RunningFicus): number => ficus.legacy.requests.filter((r) => r.target === attendance.url).length

function bootstrapFile (dir: string, schools: readonly string[]): string {
  const path = join(dir, 'bootstrap-flags.json')
  writeJson(path, flagsOnFor(schools, attendance.flag))
  return path
}

t.test('Unleash stopped mid-run: ficus serves with the last flags and reports staleness; started again: a flip propagates', async (t) => {
  await configureFlag(unleash, attendance.flag, { enabled: true, strategies: [defaultStrategy([constraintIn('tenantId', ['school-a'])])] })
  const ficus = await startFicus(t, { unleash, schools: SCHOOLS })
  t.equal((await ficus.get('school-a', attendance.url)).servedBy, 'new', 'before the outage: school-a on new')
  t.equal(flagsDetail(await ficus.readyz()).sourceReachable, true, 'before the outage: source reachable')

  await unleash.stop()
  const stoppedAt = performance.now()
  const down = await ficus.waitForReadyz((r) => flagsDetail(r).sourceReachable === false, 'sourceReachable false', UNREACHABLE_WAIT_MS)
  t.comment(`ficus reported the source unreachable ${Math.round(performance.now() - stoppedAt)} ms after the server stopped`)
  t.equal(down.status, 200, '/readyz stays 200: the last known flags are good to serve')
  t.equal((await ficus.get('school-a', attendance.url)).servedBy, 'new', 'school-a still on new')
  t.equal((await ficus.get('school-b', attendance.url)).servedBy, 'legacy', 'school-b still on legacy')
  const staleBefore = flagsDetail(down).staleForMs ?? -1
  await sleep(1_000)
  const staleAfter = flagsDetail(await ficus.readyz()).staleForMs ?? -1
  t.ok(staleBefore > 0 && staleAfter >= staleBefore + 500, `staleForMs grows while the server is down (${staleBefore} -> ${staleAfter})`)

  // Started during the outage with no bootstrap and an empty backup dir: nothing to decide with.
  const late = await startFicus(t, { unleash, schools: SCHOOLS, waitReady: false })
  await sleep(NOT_READY_OBSERVE_MS)
  t.equal((await late.readyz()).status, 503, 'a ficus started during the outage is not ready')
  t.equal((await late.get('school-a', attendance.url)).status, 503, 'and refuses to decide')
  t.equal(attendanceRequests(late), 0, 'legacy saw none of its requests')

  const outageLeft = OUTAGE_MIN_MS - (performance.now() - stoppedAt)
  if (outageLeft > 0) await sleep(outageLeft)
  await unleash.start()
  const outageMs = Math.round(performance.now() - stoppedAt)
  t.comment(`outage lasted ${outageMs} ms (server restart took ${unleash.lastStartMs} ms)`)
  t.equal(ficus.logs((line) => line.msg === UNREACHABLE_LOG).length, 1, `one warning for the whole ${outageMs} ms outage, not one per failed poll`)
  await ficus.waitForReadyz((r) => flagsDetail(r).sourceReachable, 'sourceReachable true again', READY_WAIT_MS)
  t.equal(ficus.logs((line) => line.msg === REACHABLE_LOG).length, 1, 'the recovery is logged once')
  await late.waitForReadyz((r) => r.status === 200, 'ready once the server answers', READY_WAIT_MS)
  t.equal((await late.get('school-a', attendance.url)).servedBy, 'new', 'the late ficus serves the server\'s flags')

  const clicked = performance.now()
  await unleash.admin.disable(attendance.flag, unleash.environment)
  await ficus.waitForSide('school-a', attendance.url, 'legacy', FLIP_WAIT_MS)
  t.comment(`flip after the restart seen by ficus ${Math.round(performance.now() - clicked)} ms after the Admin API call`)
  await late.waitForSide('school-a', attendance.url, 'legacy', FLIP_WAIT_MS)
  t.pass('the flip reached both processes')
})

t.test('Unleash down at ficus start, no bootstrap: /readyz 503 and no request of a migrated route is decided', async (t) => {
  const ficus = await startFicus(t, {
    unleash: { apiUrl: `http://127.0.0.1:${await closedPort()}/api`, clientToken: unleash.clientToken },
    schools: SCHOOLS,
    waitReady: false
  })
  await sleep(NOT_READY_OBSERVE_MS)
  const readyz = await ficus.readyz()
  t.equal(readyz.status, 503, '/readyz is 503')
  t.match(readyz.body.checks.flags, { ready: false, detail: { ready: false, staleForMs: undefined } }, 'the flags check says why')
  for (const school of ['school-a', 'school-b']) {
    const answer = await ficus.get(school, attendance.url, { accept: 'application/json' })
    t.equal(answer.status, 503, `${school}: 503`)
    t.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'FICUS_ERR_FLAGS_NOT_READY', `${school}: FICUS_ERR_FLAGS_NOT_READY`)
  }
  t.equal(attendanceRequests(ficus), 0, 'legacy received none of them')
  const decisions = (await ficus.decisions('school-a')).body as { routes: Array<{ route: string, reason: string }> }
  t.match(decisions.routes.find((r) => r.route === attendance.name)?.reason, /not loaded/, '/decisions says the flags are not loaded')
})

t.test('Unleash down at ficus start, with a bootstrap file (FLAGS_FILE): ficus serves from it', async (t) => {
  const ficus = await startFicus(t, {
    unleash: { apiUrl: `http://127.0.0.1:${await closedPort()}/api`, clientToken: unleash.clientToken },
    schools: SCHOOLS,
    env: { FLAGS_FILE: bootstrapFile(t.testdir(), ['school-b']) }
  })
  const readyz = await ficus.readyz()
  t.equal(readyz.status, 200, '/readyz is 200')
  t.match(readyz.body.checks.flags.detail, { ready: true, source: /^unleash / }, 'flags come from Unleash, bootstrapped')
  t.equal(readyz.body.checks.flags.detail.staleForMs, undefined, 'never confirmed by the server: no staleness to report')
  t.equal((await ficus.get('school-b', attendance.url)).servedBy, 'new', 'school-b on new, as the bootstrap says')
  t.equal((await ficus.get('school-a', attendance.url)).servedBy, 'legacy', 'school-a on legacy, as the bootstrap says')
  const unreachable = await ficus.waitForReadyz((r) => !flagsDetail(r).sourceReachable, 'sourceReachable false', UNREACHABLE_WAIT_MS)
  t.match(flagsDetail(unreachable), { ready: true, sourceReachable: false, staleForMs: undefined }, 'once a poll failed, /readyz says the server is unreachable')
})

t.test('SIGTERM while Unleash is unreachable: ficus exits 0', async (t) => {
  const ficus = await startFicus(t, {
    unleash: { apiUrl: `http://127.0.0.1:${await closedPort()}/api`, clientToken: unleash.clientToken },
    schools: SCHOOLS,
    env: { FLAGS_FILE: bootstrapFile(t.testdir(), ['school-a']) }
  })
  await ficus.waitForReadyz((r) => !flagsDetail(r).sourceReachable, 'a failed poll', UNREACHABLE_WAIT_MS)
  t.same(await ficus.stop(), { code: 0, signal: null }, `exit 0; stderr: ${ficus.process.stderr().slice(0, 500)}`)
  t.ok(ficus.logs((line) => line.msg === 'stopped').length === 1, 'shut down through its own stop sequence')
})

t.test('SIGTERM while a flags fetch is in flight: ficus exits 0', async (t) => {
  const held: ServerResponse[] = []
  const stub = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/api/client/features') === true) held.push(res)
    else res.writeHead(202).end()
  })
  stub.listen(0, '127.0.0.1')
  await once(stub, 'listening')
  t.teardown(() => { stub.closeAllConnections(); stub.close() })
  const ficus = await startFicus(t, {
    unleash: { apiUrl: `http://127.0.0.1:${(stub.address() as AddressInfo).port}/api`, clientToken: unleash.clientToken },
    schools: SCHOOLS,
    waitReady: false
  })
  await waitFor(() => held.length > 0, READY_WAIT_MS, 'the first flags fetch to reach the stub')
  t.equal((await ficus.readyz()).status, 503, 'not ready: the fetch is still waiting for its answer')
  t.same(await ficus.stop(), { code: 0, signal: null }, `exit 0; stderr: ${ficus.process.stderr().slice(0, 500)}`)
})

// Flags.close() against a fetch that fails after destroy(): the client's repository then emits
// 'error' with no listener of its own. Run in a child process so a crash shows as its exit code.
const RACE_SCRIPT = `
import { createServer } from 'node:http'
const { Flags } = await import(process.argv[1])
const silent = { info () {}, warn () {}, error () {} }
let fetches = 0
let release
const server = createServer((req, res) => {
  if (!req.url.startsWith('/api/client/features')) { res.writeHead(202).end(); return }
  fetches += 1
  res.setHeader('content-type', 'application/json')
  if (fetches === 1) { res.end(JSON.stringify({ version: 2, features: [] })); return }
  release = () => res.end('{not json')
})
server.listen(0, '127.0.0.1', () => {
  const flags = Flags.fromServer({ url: 'http://127.0.0.1:' + server.address().port + '/api', apiToken: 'test', appName: 'race',
    environment: 'default', refreshIntervalMs: 50, bootstrapFile: undefined, backupDir: process.argv[2] }, silent)
  const inFlight = setInterval(async () => {
    if (release === undefined || !flags.isReady()) return
    clearInterval(inFlight)
    await flags.close()
    release()
    setTimeout(() => { console.log('survived'); server.closeAllConnections(); server.close(); process.exit(0) }, 500)
  }, 5)
})
`

t.test('Flags.close() while a fetch is in flight that then fails does not crash the process', async (t) => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', RACE_SCRIPT, pathToFileURL(join(PROJECT_ROOT, 'flags/flags.ts')).href, t.testdir()], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
  t.teardown(() => { clearTimeout(timer); child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, `the process survives; stderr: ${stderr.slice(0, 800)}`)
  t.match(stdout, /survived/)
})
