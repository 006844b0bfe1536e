// The migration console's two budgets (issue 15), on the bench's 1,500 schools and 50 flags:
//   1. the matrix of 1,500 schools x 10 routes renders in under 1 s (in-process, wall time), and
//      a console read costs the main thread (the public port's) under 1 ms: its event-loop busy
//      time per read (nodePerformance.eventLoopUtilization), the page being built in the page worker;
//   2. console reads never slow the public port: p99 of legacy-bound traffic (/timetable, decided
//      then forwarded to an nginx upstream, at a paced rate) with and without a signed-in console
//      reading three pages every second, in interleaved rounds.
//   node bench/console.ts [--seconds=10] [--rounds=3] [--renders=20] [--rate=300]   (--rounds=0: budget 1 only)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { monitorEventLoopDelay, performance as nodePerformance } from 'node:perf_hooks'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { Pool, request } from 'undici'
import { Flags } from '../flags/flags.ts'
import { FicusMetrics } from '../metrics/registry.ts'
import { parseConfig } from '../proxy/config.ts'
import { createFicus } from '../proxy/create-ficus.ts'
import type { MigratedRoute } from '../core/route.ts'
import { FileTenantRegistry } from '../tenants/file-registry.ts'
import { FileFlagStore } from '../console/flag-store.ts'
import { FileChangeLog } from '../console/history.ts'
import { FileSchedule } from '../console/schedule.ts'
import { MigrationConsole } from '../console/migration.ts'
import { BENCH_FLAGS, BENCH_PATHS, SCHOOLS, schoolId, writeFixtures } from './lib/fixtures.ts'
import { CLOCK_TICKS_PER_SECOND, cpuTicks, spawnPinned, waitReady } from './lib/proc.ts'
import { PROBE_HOST } from './lib/scenarios.ts'
import { ensureTools } from './lib/tools.ts'

const RENDER_BOUND_MS = 1_000
const PROXY_CPU = 0
const LOAD_CPU = 1
const MALLOC_TRIM_THRESHOLD = '67108864'
const TOKEN = 'bench-console-token-0123456789'
const SILENT = { info () {}, warn () {}, error () {} }
const MAIN = fileURLToPath(new URL('../proxy/main.ts', import.meta.url))

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rounds: { type: 'string', default: '3' }, renders: { type: 'string', default: '20' }, rate: { type: 'string', default: '300' } } })
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const renders = Number(values.renders)
const rate = Number(values.rate)
const log = (line: string): void => { process.stdout.write(`${line}\n`) }

/**
 * CPU time of the calling thread, exact as of its last sleep (a console read sleeps while the
 * worker builds the page); getrusage's per-thread figure only moves in ticks.
 */
const threadCpuMs = (): number => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6
const median = (list: readonly number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN

async function measureRender (tenantsFile: string, flagsFile: string): Promise<void> {
  const registry = new FileTenantRegistry({ path: tenantsFile })
  await registry.start()
  const flags = await Flags.fromFile(flagsFile, SILENT)
  const flagNames = [BENCH_FLAGS.small, BENCH_FLAGS.large, BENCH_FLAGS.legacyPage, BENCH_FLAGS.session, BENCH_FLAGS.database, BENCH_FLAGS.migrated, 'feature-9', 'feature-10', 'feature-11', 'feature-12']
  const routes: MigratedRoute[] = flagNames.map((flag, i) => ({ name: `bench.route-${i}`, method: 'GET', url: `/bench/route-${i}`, flag, handler: async () => 'ok' }))
  // The guards and metrics the console reads, wired as main.ts wires them (nothing listens).
  const ficus = await createFicus(parseConfig({ LEGACY_URL: 'http://127.0.0.1:1', TENANTS_FILE: tenantsFile, FLAGS_FILE: flagsFile, KILL_SWITCH_FLAG: BENCH_FLAGS.killSwitch, LOG_LEVEL: 'silent' }), { registry, flags, routes, sessions: false, processMetrics: false, console: false })
  const { safety, metrics } = ficus
  // Evidence to show: shadow results for every school on every route, requests per cohort.
  for (const guard of safety.guards) for (let i = 0; i < SCHOOLS; i++) guard.shadow.add(schoolId(i), i % 50 === 0 ? 'mismatch' : 'match')
  for (let r = 0; r < routes.length; r++) for (let i = 0; i < 20_000; i++) metrics.observe(FicusMetrics.FIRST_ROUTE + r, i % 3 === 0 ? 'new' : 'legacy', 200, `wave-${i % 5}`, 0.01)
  const dir = mkdtempSync(join(tmpdir(), 'ficus-bench-console-'))
  const migration = new MigrationConsole({ routes, registry, flags, killSwitchFlag: BENCH_FLAGS.killSwitch, guards: safety.guards, metrics, store: new FileFlagStore(flagsFile), log: new FileChangeLog(join(dir, 'history.jsonl')), schedule: new FileSchedule(join(dir, 'schedule.json')), freezeWindows: [] })
  const user = { user: 'bench', csrf: 'x' }
  const matrix = (query: { q?: string, cohort?: string }): Promise<string> => migration.pages.matrix({ user, freeze: undefined, query })
  // The first page: the worker starts, then decides every (route, school) side.
  let started = performance.now()
  await matrix({})
  const firstMs = performance.now() - started
  log(`first matrix page (worker start, every side of ${SCHOOLS} schools x ${routes.length} routes decided in the worker in ${migration.pages.lastDecisionMs?.toFixed(0)} ms): ${firstMs.toFixed(0)} ms wall`)
  // A flag change: the next page copies the definitions and waits for the worker to decide again.
  const definitionsVersion = flags.definitionsVersion
  const flagsText = readFileSync(flagsFile, 'utf8')
  writeFileSync(flagsFile, flagsText.replace('"enabled":true', '"enabled": true'))
  flags.reload()
  for (let waited = 0; flags.definitionsVersion === definitionsVersion; waited += 10) {
    if (waited > 5_000) throw new Error('the flags file change was not picked up')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  started = performance.now()
  await matrix({})
  const afterChangeMs = performance.now() - started
  log(`matrix page after a flag change (definitions copied, every side decided again in ${migration.pages.lastDecisionMs?.toFixed(0)} ms): ${afterChangeMs.toFixed(0)} ms wall`)
  let worstRender = 0
  const views = { 'cohorts (every school counted)': {}, 'one cohort, page 1 (40 schools)': { cohort: 'wave-1' }, 'search "school-14"': { q: 'school-14' } }
  log(`matrix pages, ${[...migration.cohorts().keys()].length} cohorts, ${renders} renders each (wall: built and rendered in the worker; the main thread's CPU per read (/proc/thread-self/schedstat), and its event-loop busy time, which a loaded machine inflates):`)
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  for (const shadowTraffic of [false, true]) {
    for (const [label, query] of Object.entries(shadowTraffic ? { 'cohorts (every school counted)': {} } : views)) {
      const times: number[] = []
      const busy: number[] = []
      const cpu: number[] = []
      let bytes = 0
      for (let i = 0; i < (shadowTraffic ? Math.ceil(renders / 2) : renders); i++) {
        // With shadow traffic, every route's counts moved since the last read and, the 2 s
        // between two copies of a route having passed, one route's are copied (the most one
        // read copies): the costliest read in a steady state.
        if (shadowTraffic) {
          for (const guard of safety.guards) guard.shadow.add(schoolId(i), 'match')
          await new Promise((resolve) => setTimeout(resolve, 2_100))
        }
        const elu = nodePerformance.eventLoopUtilization()
        const threadCpu = threadCpuMs()
        const t0 = performance.now()
        bytes = (await matrix(query)).length
        times.push(performance.now() - t0)
        cpu.push(threadCpuMs() - threadCpu)
        busy.push(nodePerformance.eventLoopUtilization(elu).active)
      }
      const worst = Math.max(...times)
      worstRender = Math.max(worstRender, worst)
      log(`  ${shadowTraffic ? 'one route\'s shadow counts copied, ' : ''}${label}: wall median ${median(times).toFixed(1)} ms, worst ${worst.toFixed(1)} ms; main thread CPU median ${median(cpu).toFixed(2)} ms, worst ${Math.max(...cpu).toFixed(2)} ms a read (busy median ${median(busy).toFixed(2)} ms, worst ${Math.max(...busy).toFixed(2)} ms); ${Math.round(bytes / 1024)} KiB`)
    }
  }
  delay.disable()
  log(`longest main-thread event-loop delay over those reads: ${(delay.max / 1e6).toFixed(1)} ms`)
  // A move's preview decides every school twice (the flag as stored, as it would be), in the worker.
  const previewWall: number[] = []
  const previewCpu: number[] = []
  for (let i = 0; i < 5; i++) {
    const cpu = threadCpuMs()
    const t0 = performance.now()
    await migration.preview({ route: (routes[2] as MigratedRoute).name, action: 'new', target: { kind: 'percentage', percent: 10 + i } })
    previewWall.push(performance.now() - t0)
    previewCpu.push(threadCpuMs() - cpu)
  }
  log(`preview of a move of 10-14% of schools: wall median ${median(previewWall).toFixed(0)} ms, main thread CPU median ${median(previewCpu).toFixed(2)} ms (the flag read from the store, the move, the copy of what changed)`)
  const slowest = Math.max(firstMs, afterChangeMs, worstRender)
  log(`slowest matrix page: ${slowest.toFixed(0)} ms -> ${slowest < RENDER_BOUND_MS ? 'under' : 'OVER'} ${RENDER_BOUND_MS} ms`)
  migration.close()
  await ficus.close()
  await flags.close()
  await registry.close()
  rmSync(dir, { recursive: true, force: true })
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')))
    }).on('error', reject)
  })
}

async function measurePublicPort (fixtures: ReturnType<typeof writeFixtures>): Promise<void> {
  const tools = ensureTools(log)
  const upstreamPort = await freePort()
  const upstream = spawnPinned(tools.taskset, LOAD_CPU, tools.nginx, ['-p', fixtures.dir, '-c', fixtures.nginxUpstreamConf(upstreamPort), '-e', join(fixtures.dir, 'upstream.error.log')], process.env)
  const port = await freePort()
  const adminPort = await freePort()
  const ficus = spawnPinned(tools.taskset, PROXY_CPU, process.execPath, [MAIN], {
    PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', MALLOC_TRIM_THRESHOLD_: MALLOC_TRIM_THRESHOLD,
    HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), LEGACY_URL: `http://127.0.0.1:${upstreamPort}`,
    TENANTS_FILE: fixtures.tenantsFile, FLAGS_FILE: fixtures.flagsFile, KILL_SWITCH_FLAG: BENCH_FLAGS.killSwitch,
    ADMIN_TOKEN: TOKEN, CONSOLE_HISTORY_FILE: join(fixtures.dir, 'history.jsonl'), CONSOLE_SCHEDULE_FILE: join(fixtures.dir, 'schedule.json'), ACCESS_LOG: 'false', LOG_LEVEL: 'warn', PREWARM_LEGACY_CONNECTIONS: '0', DRAIN_DELAY_MS: '0'
  })
  try {
    await waitReady(upstreamPort, '/', PROBE_HOST, upstream)
    await waitReady(port, BENCH_PATHS.legacyPage, PROBE_HOST, ficus)
    const signIn = await request(`http://127.0.0.1:${adminPort}/console/sign-in`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `user=admin&password=${TOKEN}` })
    await signIn.body.dump()
    const cookie = String(signIn.headers['set-cookie']).split(';')[0] as string
    const pages = ['/console', '/console?cohort=wave-1', `/console/cell?route=timetable.page&school=${schoolId(7)}`]
    const reader = async (stop: { done: boolean }, took: number[]): Promise<void> => {
      while (!stop.done) {
        const started = performance.now()
        for (const path of pages) {
          const answer = await request(`http://127.0.0.1:${adminPort}${path}`, { headers: { cookie } })
          const body = await answer.body.text()
          if (answer.statusCode !== 200 || !body.includes('ficus')) throw new Error(`console page ${path}: ${answer.statusCode}`)
        }
        took.push(performance.now() - started)
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1_000 - (performance.now() - started))))
      }
    }
    // Paced, below saturation, as production runs with headroom: a closed loop (wrk) would keep
    // ficus at 100% CPU, where any extra work shows up as queueing whatever its shape.
    const load = (): Promise<{ requests: number, errors: number, p50Ms: number, p99Ms: number }> => pacedLoad(port, rate, seconds)
    await load() // warm-up
    const without: number[] = []
    const withConsole: number[] = []
    const cpuWithout: number[] = []
    const cpuWith: number[] = []
    const mainWithout: number[] = []
    const mainWith: number[] = []
    const readTimes: number[] = []
    for (let round = 0; round < rounds; round++) {
      for (const reading of round % 2 === 0 ? [false, true] : [true, false]) {
        const stop = { done: false }
        const ticks = cpuTicks(ficus.pid)
        const mainTicks = mainThreadTicks(ficus.pid)
        const reads = reading ? reader(stop, readTimes) : Promise.resolve()
        const result = await load()
        stop.done = true
        await reads
        // ficus's own CPU over the run, in ms per second: what the console's reads add to it.
        ;(reading ? cpuWith : cpuWithout).push(((cpuTicks(ficus.pid) - ticks) * 1_000 / CLOCK_TICKS_PER_SECOND) / seconds)
        // The event loop's thread alone (the page worker and libuv's threads left out).
        ;(reading ? mainWith : mainWithout).push(((mainThreadTicks(ficus.pid) - mainTicks) * 1_000 / CLOCK_TICKS_PER_SECOND) / seconds)
        if (result.errors > 0) throw new Error(`${result.errors} requests failed`)
        ;(reading ? withConsole : without).push(result.p99Ms)
        log(`  round ${round + 1}, ${reading ? 'console reading every second' : 'no console                  '}: ${Math.round(result.requests / seconds)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`)
      }
    }
    log(`legacy-bound p99, median of ${rounds}: without the console ${median(without).toFixed(2)} ms, with it ${median(withConsole).toFixed(2)} ms (ratio ${(median(withConsole) / median(without)).toFixed(3)}); three console pages took ${median(readTimes).toFixed(0)} ms (median)`)
    log(`ficus CPU, median: ${median(cpuWithout).toFixed(0)} ms/s without the console, ${median(cpuWith).toFixed(0)} ms/s with it (+${(median(cpuWith) - median(cpuWithout)).toFixed(0)} ms/s)`)
    log(`ficus main thread (the event loop) CPU, median: ${median(mainWithout).toFixed(0)} ms/s without the console, ${median(mainWith).toFixed(0)} ms/s with it (+${(median(mainWith) - median(mainWithout)).toFixed(0)} ms/s)`)
  } finally {
    await ficus.stop()
    await upstream.stop()
  }
}

/** CPU ticks of a process's main thread: its thread id is the process id. */
function mainThreadTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** `rate` requests a second for `seconds`, over 1,000 schools, each request's latency recorded. */
async function pacedLoad (port: number, rate: number, seconds: number): Promise<{ requests: number, errors: number, p50Ms: number, p99Ms: number }> {
  const workers = 20
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: workers })
  const latencies: number[] = []
  let errors = 0
  let turn = 0
  const intervalMs = (1_000 * workers) / rate
  const end = performance.now() + seconds * 1_000
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    let next = performance.now() + (intervalMs * w) / workers
    while (next < end) {
      const wait = next - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const started = performance.now()
      try {
        const answer = await pool.request({ method: 'GET', path: BENCH_PATHS.legacyPage, headers: { host: `${schoolId(turn++ % 1_000)}.localhost` } })
        await answer.body.dump()
        if (answer.statusCode !== 200) errors++
      } catch {
        errors++
      }
      // Latency from when the request was due, so that a stall also counts for the requests it delayed.
      latencies.push(performance.now() - Math.min(started, next))
      next += intervalMs
    }
  }))
  await pool.close()
  latencies.sort((a, b) => a - b)
  return { requests: latencies.length, errors, p50Ms: latencies[Math.floor(latencies.length * 0.5)] ?? 0, p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0 }
}

const fixtures = writeFixtures()
try {
  await measureRender(fixtures.tenantsFile, fixtures.flagsFile)
  if (rounds > 0) {
    log(`public port, /timetable (decided, then legacy) from 1,000 schools, ${rate} req/s paced over 20 connections, ${seconds} s per run, ${rounds} interleaved rounds:`)
    await measurePublicPort(fixtures)
  }
} finally {
  rmSync(fixtures.dir, { recursive: true, force: true })
}
