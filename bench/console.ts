// The migration console's two budgets (issue 15), on the bench's 1,500 schools and 50 flags:
//   1. the matrix of 1,500 schools x 10 routes renders in under 1 s (in-process, wall time), and
//      a console read costs the main thread (the public port's) under 1 ms: its event-loop busy
//      time per read (nodePerformance.eventLoopUtilization), the page being built in the page worker;
//   2. console reads never slow the public port: p99 of legacy-bound traffic (/timetable, decided
//      then forwarded to an nginx upstream, at a paced rate) in rounds of three runs: no reader, a
//      signed-in console reader fetching three pages every second, and the same reader fetching
//      byte-identical copies of those pages from the upstream (the control: the bench's own share).
//   node bench/console.ts [--seconds=10] [--rounds=3] [--renders=20] [--rate=300]   (--rounds=0: budget 1 only)
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { monitorEventLoopDelay, performance as nodePerformance } from 'node:perf_hooks'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
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
import { spawnPinned, waitReady, type Pinned } from './lib/proc.ts'
import type { PacedResult } from './lib/paced-load.ts'
import { PROBE_HOST } from './lib/scenarios.ts'
import { ensureTools } from './lib/tools.ts'

const RENDER_BOUND_MS = 1_000
const PROXY_CPU = 0
const LOAD_CPU = 1
const MALLOC_TRIM_THRESHOLD = '67108864'
const TOKEN = 'bench-console-token-0123456789'
const SILENT = { info () {}, warn () {}, error () {} }
const MAIN = fileURLToPath(new URL('../proxy/main.ts', import.meta.url))
const READER = fileURLToPath(new URL('./lib/console-reader.ts', import.meta.url))
const PACED_LOAD = fileURLToPath(new URL('./lib/paced-load.ts', import.meta.url))

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
  const matrix = (query: { q?: string, cohort?: string }): Promise<Buffer> => migration.pages.matrix({ user, freeze: undefined, query })
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
    // The same bytes as the console's pages, for the reader to fetch from the upstream's nginx:
    // whatever reading them costs the load generator's core shows in that run too.
    mkdirSync(join(fixtures.dir, 'console-copy'), { recursive: true })
    const copies = await Promise.all(pages.map(async (path, i) => {
      const answer = await request(`http://127.0.0.1:${adminPort}${path}`, { headers: { cookie } })
      const body = await answer.body.text()
      if (answer.statusCode !== 200 || !body.includes('ficus')) throw new Error(`console page ${path}: ${answer.statusCode}`)
      writeFileSync(join(fixtures.dir, 'console-copy', `${i}.html`), body)
      return `/console-copy/${i}.html`
    }))
    const reader = startReader(tools.taskset)
    // Paced, below saturation, as production runs with headroom: a closed loop (wrk) would keep
    // ficus at 100% CPU, where any extra work shows up as queueing whatever its shape.
    const load = (): Promise<PacedResult> => jsonOf<PacedResult>(spawnPinned(tools.taskset, LOAD_CPU, process.execPath, [PACED_LOAD, `--port=${port}`, `--path=${BENCH_PATHS.legacyPage}`, `--rate=${rate}`, `--seconds=${seconds}`], process.env))
    await load() // warm-up
    // Each round runs, in an order that turns with the round: no reader; the reader on ficus's
    // console; the reader on copies of the same pages from the upstream (ficus untouched). The
    // last is the control: what the reading costs the bench's own processes, so that the console's
    // share of the public port's latency is the difference between the second and the third.
    const kinds = ['none', 'console', 'copies'] as const
    type Kind = typeof kinds[number]
    type Run = { p99Ms: number, cpuMsPerS: number, mainMsPerS: number, lagMaxMs: number, lagP99Ms: number }
    const runs = new Map<Kind, Run[]>(kinds.map((kind) => [kind, []]))
    const readTimes: number[] = []
    const scrape = async (): Promise<string> => await (await request(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).body.text()
    try {
      for (let round = 0; round < rounds; round++) {
        for (let k = 0; k < kinds.length; k++) {
          const kind = kinds[(k + round) % kinds.length] as Kind
          await scrape() // prom-client resets its event-loop delay histogram on every scrape
          const cpu = threadCpuNs(ficus.pid)
          const reads = kind === 'none' ? Promise.resolve([]) : reader.read(kind === 'console' ? { port: adminPort, cookie, seconds, paths: pages } : { port: upstreamPort, cookie, seconds, paths: copies })
          const result = await load()
          const took = await reads
          if (kind === 'console') readTimes.push(...took)
          const after = threadCpuNs(ficus.pid)
          const lag = await scrape()
          if (result.errors > 0) throw new Error(`${result.errors} requests failed`)
          const run = {
            p99Ms: result.p99Ms,
            // ficus's CPU over the run, every thread (the page worker's included), then its event loop's thread alone.
            cpuMsPerS: [...after].reduce((sum, [tid, ns]) => sum + ns - (cpu.get(tid) ?? 0), 0) / 1e6 / seconds,
            mainMsPerS: ((after.get(ficus.pid) ?? 0) - (cpu.get(ficus.pid) ?? 0)) / 1e6 / seconds,
            lagMaxMs: gauge(lag, 'ficus_nodejs_eventloop_lag_max_seconds') * 1_000,
            lagP99Ms: gauge(lag, 'ficus_nodejs_eventloop_lag_p99_seconds') * 1_000
          }
          runs.get(kind)?.push(run)
          log(`  round ${round + 1}, ${LABELS[kind]}: ${Math.round(result.requests / seconds)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms; ficus ${run.cpuMsPerS.toFixed(1)} ms/s of CPU, its event loop's thread ${run.mainMsPerS.toFixed(1)} ms/s; event-loop delay p99 ${run.lagP99Ms.toFixed(2)} ms, max ${run.lagMaxMs.toFixed(2)} ms`)
        }
      }
    } finally {
      reader.close()
    }
    const of = (kind: Kind, key: keyof Run): number => median((runs.get(kind) ?? []).map((run) => run[key]))
    const all = (key: keyof Run, digits: number): string => kinds.map((kind) => of(kind, key).toFixed(digits)).join(' / ')
    // The machine's own noise drifts over minutes: each round's three runs, a few seconds apart,
    // are compared with one another, and the median taken of those ratios.
    const pairedRatio = (over: Kind, under: Kind): { median: number, above: number } => {
      const ratios = (runs.get(over) ?? []).map((run, round) => run.p99Ms / ((runs.get(under) ?? [])[round]?.p99Ms ?? Number.NaN))
      return { median: median(ratios), above: ratios.filter((ratio) => ratio > 1).length }
    }
    const consoleOverCopies = pairedRatio('console', 'copies')
    const copiesOverNone = pairedRatio('copies', 'none')
    const consoleOverNone = pairedRatio('console', 'none')
    log(`medians of ${rounds} rounds, no reader / reading the console / reading copies of its pages from the upstream:`)
    log(`  legacy-bound p99: ${all('p99Ms', 2)} ms`)
    log(`  legacy-bound p99, round by round: the console against the copies ${consoleOverCopies.median.toFixed(3)}x (higher in ${consoleOverCopies.above} of ${rounds} rounds); the copies against no reader ${copiesOverNone.median.toFixed(3)}x (${copiesOverNone.above} of ${rounds}); the console against no reader ${consoleOverNone.median.toFixed(3)}x (${consoleOverNone.above} of ${rounds})`)
    log(`  ficus's event-loop delay (prom-client's, 10 ms resolution): p99 ${all('lagP99Ms', 2)} ms, longest ${all('lagMaxMs', 2)} ms`)
    log(`  ficus's CPU: ${all('cpuMsPerS', 1)} ms per second; its event loop's thread ${all('mainMsPerS', 1)} ms per second`)
    log(`  three console pages took ${median(readTimes).toFixed(0)} ms (median of the reader's rounds)`)
  } finally {
    await ficus.stop()
    await upstream.stop()
  }
}

const LABELS = { none: 'no reader                  ', console: 'reading the console        ', copies: 'reading copies, not ficus  ' } as const

interface Reader {
  read (run: { port: number, cookie: string, seconds: number, paths: readonly string[] }): Promise<number[]>
  close (): void
}

/** bench/lib/console-reader.ts, started once, under SCHED_IDLE on the load generator's core. */
function startReader (taskset: string): Reader {
  const child = spawn(taskset, ['-c', String(LOAD_CPU), 'chrt', '--idle', '0', process.execPath, READER], { stdio: ['pipe', 'pipe', 'inherit'] })
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  return {
    async read (run) {
      child.stdin.write(`${JSON.stringify(run)}\n`)
      const answer = await answers.next()
      if (answer.done === true) throw new Error(`the console reader exited with ${child.exitCode}`)
      return (JSON.parse(answer.value as string) as { took: number[] }).took
    },
    close () {
      child.stdin.end()
    }
  }
}

/** On-CPU nanoseconds of each thread of a process (schedstat: exact, unlike the ticks of stat). */
function threadCpuNs (pid: number): Map<number, number> {
  const threads = new Map<number, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      threads.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]))
    } catch {
      // Gone between the listing and the read.
    }
  }
  return threads
}

/** A gauge's value in a Prometheus exposition; NaN when it is not there. */
function gauge (exposition: string, name: string): number {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${name} `) || candidate.startsWith(`${name}{`))
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** The last line a bench child printed, as JSON, once it has exited 0. */
async function jsonOf<T> (child: Pinned): Promise<T> {
  const code = await new Promise<number | null>((resolve) => {
    if (child.child.exitCode !== null) resolve(child.child.exitCode)
    else child.child.once('close', resolve)
  })
  const lines = child.output().trim().split('\n')
  if (code !== 0) throw new Error(`a bench child exited with ${code}:\n${lines.join('\n')}`)
  return JSON.parse(lines.at(-1) ?? '') as T
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
