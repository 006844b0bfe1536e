// The benchmark of ficus beside the proxies it is measured against (issue 7).
//   npm run bench                  full run: interleaved rounds, medians with min-max
//   npm run bench -- --quick       one short round, under 2 minutes, for development
//   npm run bench -- --profile     ficus scenario (a) under --cpu-prof, summarised
// Options: --rounds=N --seconds=N --warmup=N --connections=N --only=<id substring>[,<another>]
//          --profile-scenario=<scenario id> --school-databases=N (scenario d; 100, quick 20)
//          --ficus-node-flags="<flags>" / --node-flags="<flags>" (extra Node flags for the ficus
//          processes / for every Node contender, for experiments)
// Loopback only. The proxy under test runs alone on core 0; wrk and the upstream share core 1.
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BASE_DOMAIN, BENCH_FLAGS, cohortsOf, SCHOOLS, SESSION_COOKIE, VISITED_SCHOOLS, writeFixtures, type Fixtures } from './lib/fixtures.ts'
import { ConnectionPeak, createSchoolDatabases, dropBenchDatabases, type SchoolDatabases } from './lib/postgres.ts'
import { CLOCK_TICKS_PER_SECOND, coreTimes, get, processTree, spawnPinned, treeCpuTicks, treeRssBytes, waitReady, type Pinned } from './lib/proc.ts'
import { commandsBetween, createBenchSessions, REDIS_URL, type BenchSessions } from './lib/redis.ts'
import { startPgBouncer, type PgBouncer } from '../test/helpers/pgbouncer.ts'
import { DATABASE_POOL_SIZE, DATABASE_POOLS_MAX, OWN_WORK_US_BOUND, PGBOUNCER_MAX_SERVER_CONNECTIONS, PGBOUNCER_POOL_SIZE, PROBE_HOST, RSS_TARGET_BYTES, SCENARIOS, SESSION_ROUND_TRIPS_BOUND, TARGETS, WORKERS_CPU_GROWTH_BOUND, type Scenario } from './lib/scenarios.ts'
import { ensureTools, type Tools } from './lib/tools.ts'
import { errorCount, runWrk, type WrkResult } from './lib/wrk.ts'
import type { FlagCost } from './flag-cost.ts'
import { formatSummary, summariseProfile, type CpuProfile } from './profile-summary.ts'

const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url))
const RESULTS_DIR = join(BENCH_DIR, 'results')
// Contenders run compiled, as `npm start` runs ficus from dist/: type stripping at load costs
// every process some 17 MB of RSS that production never pays. Inside the project so that
// node_modules resolves.
const BUILD_DIR = join(RESULTS_DIR, 'build')
// The compiled tree has no SQL files: ficus is pointed at the source tree's.
const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url))
const TSC = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))
const PROXY_CPU = 0
const LOAD_CPU = 1
// Every Node contender runs with the same allocator setting, so none wins by returning memory later.
const MALLOC_TRIM_THRESHOLD = '67108864'
const DEFAULT_CONNECTIONS = 50
const FLAG_COST_BOUND = 0.02
// Other work above this share of the proxy core marks a measurement as disturbed.
const NOISY_PERCENT = 5
const CONNECTION_SAMPLE_MS = 100
// A cluster's workers start after the primary answers nothing: how long to wait for them.
const WORKERS_SETTLE_MS = 1_000
const MODES = {
  full: { rounds: 5, warmup: 2, seconds: 6, schoolDatabases: 100, redisBackgroundMs: 2_000 },
  quick: { rounds: 1, warmup: 1, seconds: 3, schoolDatabases: 20, redisBackgroundMs: 500 }
} as const

interface Settings {
  readonly mode: 'full' | 'quick' | 'profile'
  readonly rounds: number
  readonly warmup: number
  readonly seconds: number
  readonly connections: number
  /** Id substrings (from --only=a,b): a scenario runs when its id contains one of them. */
  readonly only: readonly string[] | undefined
  readonly profileScenario: string
  readonly schoolDatabases: number
  /** How long other clients' Redis commands are counted with the proxy idle, after a session run. */
  readonly redisBackgroundMs: number
  readonly ficusNodeFlags: readonly string[]
  readonly nodeFlags: readonly string[]
}

interface Sample {
  readonly round: number
  readonly rps: number
  readonly p50Us: number
  readonly p90Us: number
  readonly p99Us: number
  readonly requests: number
  readonly errors: number
  /** CPU time of the proxy process per request; undefined for direct-to-upstream. */
  readonly cpuUsPerRequest: number | undefined
  readonly proxyCpuPercent: number | undefined
  readonly rssBytes: number | undefined
  /** RSS once listening, before any load: what the loaded configuration (1,500 schools) costs. */
  readonly rssAtStartBytes: number | undefined
  readonly upstreamCpuUsPerRequest: number
  /** Busy share of the load core (wrk + upstream): near 100 means the load side limits the result. */
  readonly loadCorePercent: number
  /** Busy share of the proxy core not spent by the proxy: other work on the machine. */
  readonly proxyCoreOtherPercent: number
  /** Redis commands the server ran: during the measured run, and from the proxy's start to its end. */
  readonly redis?: {
    readonly measured: RedisCount
    readonly sinceStart: RedisCount
    readonly requestsSinceStart: number
    /** Commands per second while the proxy was idle (other clients): what the server-wide counters add. */
    readonly backgroundPerSecond: number | undefined
  }
  /** Peak server connections to the school databases, sampled over warm-up and run. */
  readonly pgPeakConnections?: number
  /** Through PgBouncer: peak client connections ficus held to it, and its peak server connections. */
  readonly bouncerPeak?: { readonly client: number, readonly server: number }
  /** Processes of the contender (primary and workers). */
  readonly processes: number
}

interface RedisCount {
  readonly total: number
  readonly byCommand: Record<string, number>
}

/**
 * A routing table of `entries` prefixes, each to a service of its own (closed ports on other
 * loopback addresses: never reached, the bench path matches none), and the upstream as default.
 */
function legacyTable (upstream: string, entries: number): string {
  const upstreams: Record<string, { url: string }> = { main: { url: upstream } }
  const routes: Record<string, string> = {}
  for (let i = 0; i < entries; i++) {
    upstreams[`svc-${i}`] = { url: `http://127.0.0.${i + 2}:9` }
    routes[`/svc-${i}/api/`] = `svc-${i}`
  }
  return JSON.stringify({ upstreams, routes, default: 'main' })
}

/** The scenario cannot run here as it stands (WORKERS not honoured): reported as pending. */
class NotRunnable extends Error {}

interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
}

interface ScenarioResult {
  readonly id: string
  readonly label: string
  pending?: string
  /** Rounds in which it failed to start (reported in the notes). */
  failures?: number
  readonly samples: Sample[]
  summary?: Record<'rps' | 'p50Us' | 'p99Us' | 'cpuUsPerRequest' | 'proxyCpuPercent' | 'rssBytes' | 'rssAtStartBytes' | 'loadCorePercent' | 'proxyCoreOtherPercent' | 'upstreamCpuUsPerRequest', Spread | undefined> & { errors: number }
}

const log = (line: string): void => { process.stdout.write(line + '\n') }

function parseSettings (): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      only: { type: 'string' },
      'profile-scenario': { type: 'string', default: 'ficus-a/small' },
      'school-databases': { type: 'string' },
      'ficus-node-flags': { type: 'string', default: '' },
      'node-flags': { type: 'string', default: '' }
    }
  })
  const mode = values.profile ? 'profile' : values.quick ? 'quick' : 'full'
  const defaults = MODES[mode === 'profile' ? 'full' : mode]
  const number = (name: string, value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`--${name} must be a whole number >= 1, e.g. --${name}=${fallback}`)
    return parsed
  }
  return {
    mode,
    rounds: number('rounds', values.rounds, defaults.rounds),
    warmup: number('warmup', values.warmup, defaults.warmup),
    seconds: number('seconds', values.seconds, mode === 'profile' ? 15 : defaults.seconds),
    connections: number('connections', values.connections, DEFAULT_CONNECTIONS),
    only: values.only?.split(',').filter((part) => part !== ''),
    profileScenario: values['profile-scenario'],
    ficusNodeFlags: values['ficus-node-flags'].split(' ').filter((flag) => flag !== ''),
    nodeFlags: values['node-flags'].split(' ').filter((flag) => flag !== ''),
    schoolDatabases: Math.min(number('school-databases', values['school-databases'], defaults.schoolDatabases), SCHOOLS),
    redisBackgroundMs: defaults.redisBackgroundMs
  }
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')))
    })
  })
}

function versionOf (command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  return `${result.stdout}${result.stderr}`.split('\n')[0]?.replace(/ Copyright.*$/, '').trim() ?? 'unknown'
}

function machine (tools: Tools): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    nginx: versionOf(tools.nginx, ['-v']),
    wrk: versionOf(tools.wrk, ['-v']),
    loadAverageAtStart: loadavg().map((l) => l.toFixed(2)).join(' ')
  }
}

/** Redis sessions and PostgreSQL school databases, when a selected scenario needs them. */
interface Services {
  sessions?: BenchSessions
  databases?: SchoolDatabases
  /** Whether a private PgBouncer starts here (one is started per (d-bouncer) measurement). */
  bouncer?: { readonly version: string }
  /** Why a service is missing, for the scenarios that need it. */
  readonly missing: Partial<Record<'redis' | 'postgres' | 'pgbouncer', string>>
}

/** Samples a PgBouncer's pools until stopped; resolves with the peaks. */
function sampleBouncer (bouncer: PgBouncer, intervalMs: number): { stop (): Promise<{ client: number, server: number }> } {
  const peak = { client: 0, server: 0 }
  let running = true
  const loop = (async () => {
    while (running) {
      const counts = await bouncer.counts()
      peak.client = Math.max(peak.client, counts.client)
      peak.server = Math.max(peak.server, counts.server)
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop () {
      running = false
      await loop
      return peak
    }
  }
}

class Bench {
  readonly #tools: Tools
  readonly #fixtures: Fixtures
  readonly #settings: Settings
  readonly #services: Services
  #upstream: Pinned | undefined
  #upstreamPort = 0

  constructor (tools: Tools, fixtures: Fixtures, settings: Settings, services: Services) {
    this.#tools = tools
    this.#fixtures = fixtures
    this.#settings = settings
    this.#services = services
  }

  async startUpstream (): Promise<void> {
    this.#upstreamPort = await freePort()
    const conf = this.#fixtures.nginxUpstreamConf(this.#upstreamPort)
    this.#upstream = spawnPinned(this.#tools.taskset, LOAD_CPU, this.#tools.nginx, ['-p', this.#fixtures.dir, '-c', conf, '-e', join(this.#fixtures.dir, 'upstream.error.log')], process.env)
    await waitReady(this.#upstreamPort, '/', PROBE_HOST, this.#upstream)
  }

  async stop (): Promise<void> {
    await this.#upstream?.stop()
  }

  get services (): Services {
    return this.#services
  }

  #nodeEnv (scenario: Scenario, port: number, bouncer: PgBouncer | undefined): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', MALLOC_TRIM_THRESHOLD_: MALLOC_TRIM_THRESHOLD }
    const upstream = `http://127.0.0.1:${this.#upstreamPort}`
    if (!scenario.contender.ficus) return { ...env, BENCH_PORT: String(port), BENCH_UPSTREAM: upstream }
    const { sessions, databases } = this.#services
    const template = scenario.databasePath === 'pgbouncer' ? bouncer?.urlTemplate : databases?.directTemplate
    return {
      ...env,
      // Every ficus runs as production would: sessions in Redis (legacy-bound requests must not
      // touch it), the 1,500 schools from the control database's tenants table, pooled databases.
      // Without them it falls back to the embedded parts (memory sessions, tenants file, PGlite).
      ...(sessions === undefined ? {} : { REDIS_URL, SESSION_CODEC: 'json', SESSION_KEY_PREFIX: sessions.prefix }),
      ...(databases === undefined
        ? {}
        : { DATABASE_URL: databases.controlUrl, TENANT_DATABASE_URL_TEMPLATE: template ?? '', TENANT_POOLS_MAX: String(DATABASE_POOLS_MAX), TENANT_POOL_SIZE: String(DATABASE_POOL_SIZE) }),
      ...scenario.contender.env,
      ...scenario.env,
      ...(scenario.legacyTableEntries === undefined ? { LEGACY_URL: upstream } : { LEGACY_UPSTREAMS: legacyTable(upstream, scenario.legacyTableEntries) }),
      PORT: String(port),
      HOST: '127.0.0.1',
      // A contender's own choice (0: any free port) wins: the port next to the public one may be taken.
      ADMIN_PORT: scenario.contender.env?.ADMIN_PORT ?? String(port + 1 > 65_535 ? port - 1 : port + 1),
      TENANTS_FILE: this.#fixtures.tenantsFile,
      FLAGS_FILE: this.#fixtures.flagsFile,
      LOG_LEVEL: 'warn',
      MIGRATIONS_DIR,
      KILL_SWITCH_FLAG: BENCH_FLAGS.killSwitch,
      BASE_DOMAIN
    }
  }

  /** Starts the scenario's proxy on the proxy core; the upstream itself for direct runs. */
  async start (scenario: Scenario, nodeFlags: readonly string[] = [], bouncer?: PgBouncer): Promise<{ port: number, process: Pinned | undefined }> {
    const contender = scenario.contender
    if (contender.kind === 'upstream') return { port: this.#upstreamPort, process: undefined }
    const port = await freePort()
    let process: Pinned
    if (contender.kind === 'nginx-proxy') {
      const conf = this.#fixtures.nginxProxyConf(port, this.#upstreamPort)
      process = spawnPinned(this.#tools.taskset, PROXY_CPU, this.#tools.nginx, ['-p', this.#fixtures.dir, '-c', conf, '-e', join(this.#fixtures.dir, 'proxy.error.log')], globalThis.process.env)
    } else {
      const entry = compiled(contender.entry ?? '')
      const flags = [...this.#settings.nodeFlags, ...(contender.ficus ? this.#settings.ficusNodeFlags : []), ...(contender.nodeFlags ?? []), ...nodeFlags]
      process = spawnPinned(this.#tools.taskset, contender.cpus ?? PROXY_CPU, globalThis.process.execPath, [...flags, entry, ...(contender.args ?? [])], this.#nodeEnv(scenario, port, bouncer))
    }
    try {
      await waitReady(port, scenario.path, PROBE_HOST, process)
      if (scenario.processTree === true) {
        // WORKERS is honoured when the started process forks workers that serve the port.
        await new Promise((resolve) => setTimeout(resolve, WORKERS_SETTLE_MS))
        const workers = processTree(process.pid).length - 1
        const wanted = scenario.workers ?? 1
        if (wanted > 1 && workers < wanted) throw new NotRunnable(`WORKERS=${wanted} not honoured: proxy/main.ts started ${workers} child process(es)`)
      }
    } catch (error) {
      await process.stop()
      throw error
    }
    return { port, process }
  }

  /** A wrong answer served fast would win the table: check one before measuring. */
  async probe (scenario: Scenario, port: number, process: Pinned | undefined): Promise<void> {
    const answer = await get(port, scenario.path, PROBE_HOST, this.#probeHeaders(scenario))
    const problems: string[] = []
    if (answer.status !== 200) problems.push(`status ${answer.status}`)
    if (scenario.expect.bytes !== undefined && answer.bytes !== scenario.expect.bytes) problems.push(`${answer.bytes} bytes instead of ${scenario.expect.bytes}`)
    if (scenario.expect.servedBy !== undefined && answer.headers['x-served-by'] !== scenario.expect.servedBy) {
      problems.push(`x-served-by ${String(answer.headers['x-served-by'])} instead of ${scenario.expect.servedBy}`)
    }
    // The session read must find the signed-in user of the probed school.
    if (scenario.needs === 'redis' && scenario.expect.servedBy === 'new' && !answer.body.includes('"user":"user-0"')) problems.push(`no session user in ${answer.body.slice(0, 200)}`)
    if (problems.length > 0) throw new Error(`${scenario.id} answers wrongly: ${problems.join(', ')}\n${answer.body.slice(0, 300)}\n${process?.output() ?? ''}`)
  }

  #probeHeaders (scenario: Scenario): Record<string, string> {
    const sessions = this.#services.sessions
    return scenario.sessionCookie === true && sessions !== undefined ? { cookie: `${SESSION_COOKIE}=${sessions.idOf(0)}` } : {}
  }

  /** Why the scenario cannot run on this machine now, if it cannot. */
  unavailable (scenario: Scenario): string | undefined {
    if ((scenario.needs === 'redis' || scenario.sessionCookie === true) && this.#services.sessions === undefined) return `needs Redis at ${REDIS_URL}: ${this.#services.missing.redis ?? 'not set up'}`
    if (scenario.needs === 'postgres' && this.#services.databases === undefined) return `needs PostgreSQL: ${this.#services.missing.postgres ?? 'not set up'}`
    if (scenario.databasePath === 'pgbouncer' && this.#services.bouncer === undefined) return `needs pgbouncer: ${this.#services.missing.pgbouncer ?? 'not set up'}`
    return undefined
  }

  #wrk (scenario: Scenario, port: number, seconds: number): Promise<WrkResult> {
    const tag = scenario.sessionCookie === true ? this.#services.sessions?.tag ?? '' : ''
    return runWrk({
      wrk: this.#tools.wrk,
      taskset: this.#tools.taskset,
      cpu: LOAD_CPU,
      script: this.#fixtures.wrkScript,
      connections: this.#settings.connections,
      seconds,
      port,
      path: scenario.path,
      scriptArgs: [String(scenario.schools ?? VISITED_SCHOOLS), tag]
    })
  }

  async measure (scenario: Scenario, round: number): Promise<Sample> {
    const sessions = this.#services.sessions
    const countRedis = sessions !== undefined && scenario.contender.ficus
    const atStart = countRedis ? await sessions.counters() : undefined
    // A fresh PgBouncer per measurement, as a fresh proxy: none of its server connections
    // outlives it into the next scenario's count.
    const bouncer = scenario.databasePath === 'pgbouncer' ? await startBenchBouncer() : undefined
    let started: { port: number, process: Pinned | undefined }
    try {
      started = await this.start(scenario, [], bouncer)
    } catch (error) {
      await bouncer?.stop()
      throw error
    }
    const { port, process } = started
    const peak = scenario.needs === 'postgres' ? new ConnectionPeak() : undefined
    let bouncerSampling: ReturnType<typeof sampleBouncer> | undefined
    try {
      const pids = process === undefined ? [] : processTree(process.pid)
      const rssAtStart = process === undefined ? undefined : treeRssBytes(pids)
      await this.probe(scenario, port, process)
      await peak?.start(CONNECTION_SAMPLE_MS)
      if (bouncer !== undefined) bouncerSampling = sampleBouncer(bouncer, CONNECTION_SAMPLE_MS)
      const warmup = await this.#wrk(scenario, port, this.#settings.warmup)
      const upstreamPid = this.#upstream?.pid ?? 0
      const redisBefore = countRedis ? await sessions.counters() : undefined
      const before = { proxy: treeCpuTicks(pids), upstream: treeCpuTicks([upstreamPid]), cores: coreTimes() }
      const result = await this.#wrk(scenario, port, this.#settings.seconds)
      const after = { proxy: treeCpuTicks(pids), upstream: treeCpuTicks([upstreamPid]), cores: coreTimes() }
      const redisAfter = countRedis ? await sessions.counters() : undefined
      let backgroundPerSecond: number | undefined
      if (redisAfter !== undefined && scenario.sessionCookie === true) {
        const idleMs = this.#settings.redisBackgroundMs
        await new Promise((resolve) => setTimeout(resolve, idleMs))
        backgroundPerSecond = commandsBetween(redisAfter, await (sessions as BenchSessions).counters()).total / (idleMs / 1_000)
      }
      await peak?.stop()
      const bouncerPeak = await bouncerSampling?.stop()
      const rss = process === undefined ? undefined : treeRssBytes(pids)
      const seconds = result.durationUs / 1e6
      const requests = Math.max(result.requests, 1)
      const proxyCpuSeconds = (after.proxy - before.proxy) / CLOCK_TICKS_PER_SECOND
      const share = (core: number): { busy: number, total: number } => {
        const a = after.cores[core]
        const b = before.cores[core]
        return a === undefined || b === undefined ? { busy: 0, total: 1 } : { busy: a.busy - b.busy, total: Math.max(a.total - b.total, 1) }
      }
      const proxyCore = share(PROXY_CPU)
      const loadCore = share(LOAD_CPU)
      const proxyTicks = after.proxy - before.proxy
      return {
        round,
        rps: result.requests / seconds,
        p50Us: result.p50Us,
        p90Us: result.p90Us,
        p99Us: result.p99Us,
        requests: result.requests,
        errors: errorCount(result),
        cpuUsPerRequest: process === undefined ? undefined : proxyCpuSeconds * 1e6 / requests,
        proxyCpuPercent: process === undefined ? undefined : proxyCpuSeconds / seconds * 100,
        rssBytes: rss,
        rssAtStartBytes: rssAtStart,
        upstreamCpuUsPerRequest: (after.upstream - before.upstream) / CLOCK_TICKS_PER_SECOND * 1e6 / requests,
        loadCorePercent: loadCore.busy / loadCore.total * 100,
        proxyCoreOtherPercent: Math.max(0, proxyCore.busy - (process === undefined ? 0 : proxyTicks)) / proxyCore.total * 100,
        ...(atStart === undefined || redisBefore === undefined || redisAfter === undefined
          ? {}
          : {
              redis: {
                measured: commandsBetween(redisBefore, redisAfter),
                sinceStart: commandsBetween(atStart, redisAfter),
                requestsSinceStart: warmup.requests + result.requests + 1,
                backgroundPerSecond
              }
            }),
        ...(peak === undefined ? {} : { pgPeakConnections: peak.peak }),
        ...(bouncerPeak === undefined ? {} : { bouncerPeak }),
        processes: pids.length
      }
    } finally {
      await peak?.stop()
      await bouncerSampling?.stop()
      await process?.stop()
      await bouncer?.stop()
    }
  }

  /** bench/flag-cost.ts on the proxy core, with the same schools and flags as the scenarios. */
  flagCost (): Promise<FlagCost> {
    const script = compiled('flag-cost.ts')
    return new Promise((resolve, reject) => {
      execFile(this.#tools.taskset, ['-c', String(PROXY_CPU), globalThis.process.execPath, script, this.#fixtures.tenantsFile, this.#fixtures.flagsFile],
        { env: { ...globalThis.process.env, MALLOC_TRIM_THRESHOLD_: MALLOC_TRIM_THRESHOLD } }, (error, stdout, stderr) => {
          if (error !== null) return reject(new Error(`flag-cost failed: ${error.message}\n${stderr}`))
          resolve(JSON.parse(stdout) as FlagCost)
        })
    })
  }

  /** Runs the scenario under --cpu-prof (a warm-up, then the measured run) and returns the profile it wrote, the measured run and the warm-up's length. */
  async profile (scenario: Scenario, dir: string): Promise<{ file: string, result: WrkResult, warmupMs: number }> {
    mkdirSync(dir, { recursive: true })
    const { port, process } = await this.start(scenario, ['--cpu-prof', '--cpu-prof-dir', dir])
    let result: WrkResult
    try {
      await this.probe(scenario, port, process)
      await this.#wrk(scenario, port, this.#settings.warmup)
      result = await this.#wrk(scenario, port, this.#settings.seconds)
    } finally {
      await process?.stop()
    }
    const file = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).sort().at(-1)
    if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}`)
    return { file: join(dir, file), result, warmupMs: this.#settings.warmup * 1_000 }
  }
}

function compiled (benchFile: string): string {
  return join(BUILD_DIR, 'bench', benchFile.replace(/\.ts$/, '.js'))
}

/** Compiles ficus and the bench; a type error elsewhere in a tree being worked on only warns. */
function build (): void {
  rmSync(BUILD_DIR, { recursive: true, force: true })
  const result = spawnSync(process.execPath, [TSC, '-p', join(BENCH_DIR, 'tsconfig.json'), '--noEmit', 'false', '--outDir', BUILD_DIR, '--sourceMap', 'false'], { encoding: 'utf8' })
  if (result.status !== 0) {
    if (!existsSync(compiled('ficus-entry.ts'))) throw new Error(`tsc failed:\n${result.stdout}${result.stderr}`)
    log(`warning: tsc reported type errors, running what it emitted:\n${result.stdout.split('\n').slice(0, 5).join('\n')}`)
  }
}

function spread (values: ReadonlyArray<number | undefined>): Spread | undefined {
  const known = values.filter((v): v is number => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b)
  if (known.length === 0) return undefined
  const middle = Math.floor(known.length / 2)
  const median = known.length % 2 === 1 ? known[middle] as number : ((known[middle - 1] as number) + (known[middle] as number)) / 2
  return { median, min: known[0] as number, max: known[known.length - 1] as number }
}

function summarise (result: ScenarioResult): void {
  const s = result.samples
  result.summary = {
    rps: spread(s.map((x) => x.rps)),
    p50Us: spread(s.map((x) => x.p50Us)),
    p99Us: spread(s.map((x) => x.p99Us)),
    cpuUsPerRequest: spread(s.map((x) => x.cpuUsPerRequest)),
    proxyCpuPercent: spread(s.map((x) => x.proxyCpuPercent)),
    rssBytes: spread(s.map((x) => x.rssBytes)),
    rssAtStartBytes: spread(s.map((x) => x.rssAtStartBytes)),
    loadCorePercent: spread(s.map((x) => x.loadCorePercent)),
    proxyCoreOtherPercent: spread(s.map((x) => x.proxyCoreOtherPercent)),
    upstreamCpuUsPerRequest: spread(s.map((x) => x.upstreamCpuUsPerRequest)),
    errors: s.reduce((sum, x) => sum + x.errors, 0)
  }
}

const fmt = {
  rps: (v: Spread | undefined): string => v === undefined ? '-' : `${Math.round(v.median)} (${Math.round(v.min)}-${Math.round(v.max)})`,
  ms: (v: Spread | undefined): string => v === undefined ? '-' : (v.median / 1_000).toFixed(2),
  us: (v: Spread | undefined): string => v === undefined ? '-' : v.median.toFixed(1),
  pct: (v: Spread | undefined): string => v === undefined ? '-' : v.median.toFixed(0),
  mb: (v: Spread | undefined): string => v === undefined ? '-' : (v.median / 2 ** 20).toFixed(0)
}

const COLUMNS = ['scenario', 'req/s median (min-max)', 'p50 ms', 'p99 ms', 'CPU µs/req', 'proxy CPU %', 'RSS MB start/after', 'load core %', 'errors']

function tableRows (results: readonly ScenarioResult[]): string[][] {
  return results.map((r) => {
    if (r.pending !== undefined) return [r.id, 'pending (see below)', '', '', '', '', '', '', '']
    const s = r.summary
    if (s === undefined) return [r.id, 'not run', '', '', '', '', '', '', '']
    return [r.id, fmt.rps(s.rps), fmt.ms(s.p50Us), fmt.ms(s.p99Us), fmt.us(s.cpuUsPerRequest), fmt.pct(s.proxyCpuPercent), s.rssBytes === undefined ? '-' : `${fmt.mb(s.rssAtStartBytes)}/${fmt.mb(s.rssBytes)}`, fmt.pct(s.loadCorePercent), String(s.errors)]
  })
}

function textTable (header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (cells: readonly string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function markdownTable (header: readonly string[], rows: readonly string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n')
}

interface Ratio {
  readonly scenario: string
  readonly baseline: string
  readonly rps: number | undefined
  readonly p99: number | undefined
  /**
   * Baseline CPU per request over ficus's: the req/s ratio on a core of their own. Other work on
   * a shared machine moves it far less than it moves req/s.
   */
  readonly capacity: number | undefined
}

function ratios (results: readonly ScenarioResult[]): Ratio[] {
  const byId = new Map(results.map((r) => [r.id, r]))
  const out: Ratio[] = []
  for (const r of results) {
    if (!r.id.startsWith('ficus') || r.summary === undefined) continue
    const payload = r.id.split('/')[1]
    for (const b of results) {
      if (b.id.startsWith('ficus') || b.id.split('/')[1] !== payload || b.summary === undefined) continue
      out.push(ratioOf(byId, r.id, b.id))
    }
  }
  return out
}

function ratioOf (byId: ReadonlyMap<string, ScenarioResult>, scenario: string, baseline: string): Ratio {
  const a = byId.get(scenario)?.summary
  const b = byId.get(baseline)?.summary
  const divide = (x: Spread | undefined, y: Spread | undefined): number | undefined => x === undefined || y === undefined || y.median === 0 ? undefined : x.median / y.median
  return { scenario, baseline, rps: divide(a?.rps, b?.rps), p99: divide(a?.p99Us, b?.p99Us), capacity: divide(b?.cpuUsPerRequest, a?.cpuUsPerRequest) }
}

function ratioTable (list: readonly Ratio[]): { header: string[], rows: string[][] } {
  const scenarios = [...new Set(list.map((r) => r.scenario))]
  const baselines = [...new Set(list.map((r) => r.baseline.split('/')[0] ?? ''))]
  const header = ['ficus vs (req/s, CPU capacity, p99)', ...baselines]
  const rows = scenarios.map((scenario) => [scenario, ...baselines.map((baseline) => {
    const r = list.find((x) => x.scenario === scenario && x.baseline.startsWith(baseline + '/'))
    return r?.rps === undefined ? '-' : `${r.rps.toFixed(2)} / ${r.capacity?.toFixed(2) ?? '-'} / ${r.p99?.toFixed(2) ?? '-'}`
  })])
  return { header, rows }
}

interface TargetResult {
  readonly label: string
  readonly value: number | undefined
  readonly met: boolean | undefined
  readonly shown: string
}

/** ficus's own work per legacy-bound request, from the profile of ficus (a) taken after the table. */
interface OwnWorkFigure {
  /** The profile's own-work share of busy time times the table's CPU per request of ficus (a). */
  readonly usPerRequest: number
  /** Own-work time in the profile over the requests served while profiling (profiler overhead included). */
  readonly profiledUsPerRequest: number
  readonly percent: number
  readonly top: readonly { readonly name: string, readonly percent: number }[]
}

function checkTargets (results: readonly ScenarioResult[], flagCost: FlagCost | undefined, connections: number, ownWork: OwnWorkFigure | undefined): TargetResult[] {
  const byId = new Map(results.map((r) => [r.id, r]))
  const out: TargetResult[] = []
  for (const target of TARGETS) {
    const ratio = ratioOf(byId, target.scenario, target.baseline)
    if (target.metric === 'cpu') {
      const a = byId.get(target.scenario)?.summary?.cpuUsPerRequest?.median
      const b = byId.get(target.baseline)?.summary?.cpuUsPerRequest?.median
      const value = a === undefined || b === undefined || b === 0 ? undefined : a / b
      out.push({
        label: target.label,
        value,
        met: value === undefined ? undefined : value <= target.bound,
        shown: value === undefined ? 'not measured' : `${value.toFixed(3)}x (${a?.toFixed(1)} µs / ${b?.toFixed(1)} µs, <= ${target.bound}x)`
      })
      continue
    }
    const value = target.metric === 'rps' ? ratio.rps : ratio.p99
    const met = value === undefined ? undefined : target.metric === 'rps' ? value >= target.bound : value <= target.bound
    const shown = value === undefined ? 'not measured' : `${value.toFixed(3)}x (${target.metric === 'rps' ? '>=' : '<='} ${target.bound}x)`
    out.push({ label: target.label, value, met, shown })
    if (target.metric === 'p99') {
      // A p99 follows whatever else ran on the proxy core; rounds it did not touch are compared too.
      const clean = (id: string): number | undefined => spread((byId.get(id)?.samples ?? []).filter((x) => x.proxyCoreOtherPercent < NOISY_PERCENT).map((x) => x.p99Us))?.median
      const a = clean(target.scenario)
      const b = clean(target.baseline)
      const quiet = a === undefined || b === undefined || b === 0 ? undefined : a / b
      out.push({
        label: `  same, over rounds with < ${NOISY_PERCENT}% other work on the proxy core`,
        value: quiet,
        met: quiet === undefined ? undefined : quiet <= target.bound,
        shown: quiet === undefined || a === undefined || b === undefined ? 'no quiet rounds' : `${quiet.toFixed(3)}x (${(a / 1_000).toFixed(2)} ms / ${(b / 1_000).toFixed(2)} ms, <= ${target.bound}x)`
      })
      continue
    }
    const capacity = ratio.capacity
    out.push({
      label: `  same, as CPU capacity (baseline CPU/req over ficus CPU/req)`,
      value: capacity,
      met: capacity === undefined ? undefined : capacity >= target.bound,
      shown: capacity === undefined ? 'not measured' : `${capacity.toFixed(3)}x (>= ${target.bound}x)`
    })
  }
  out.push({
    label: `ficus's own work on the legacy path (everything but the forwarding) <= ${OWN_WORK_US_BOUND} µs per request, from a profile`,
    value: ownWork?.usPerRequest,
    met: ownWork === undefined ? undefined : ownWork.usPerRequest <= OWN_WORK_US_BOUND,
    shown: ownWork === undefined
      ? 'not measured (needs ficus-a/small in the run)'
      : `${ownWork.usPerRequest.toFixed(2)} µs (${ownWork.percent.toFixed(1)}% of the profiled busy time x the table's CPU per request; ${ownWork.profiledUsPerRequest.toFixed(2)} µs under the profiler)`
  })
  // Scaling with cores: each request must cost the same CPU with two workers as with one, so that
  // req/s grows with the cores given to workers (this machine has two, shared with wrk and nginx).
  const one = byId.get('ficus-e1/small')?.summary
  const two = byId.get('ficus-e/small')?.summary
  const perCore = two?.cpuUsPerRequest === undefined ? undefined : 1e6 / two.cpuUsPerRequest.median
  const growth = one?.cpuUsPerRequest === undefined || two?.cpuUsPerRequest === undefined ? undefined : two.cpuUsPerRequest.median / one.cpuUsPerRequest.median
  out.push({
    label: 'WORKERS=N: CPU per request with 2 workers <= 1.1x with 1 (req/s then grows with the cores)',
    value: growth,
    met: growth === undefined ? undefined : growth <= WORKERS_CPU_GROWTH_BOUND,
    shown: growth === undefined || one === undefined || two === undefined || perCore === undefined
      ? 'not measured (needs ficus-e and ficus-e1)'
      : `${growth.toFixed(3)}x; WORKERS=1 ${Math.round(one.rps?.median ?? 0)} req/s, WORKERS=2 ${Math.round(two.rps?.median ?? 0)} req/s (${((two.rps?.median ?? 0) / (one.rps?.median ?? 1)).toFixed(2)}x, with wrk and nginx on one of the two cores); ` +
        `projection at ${two.cpuUsPerRequest?.median.toFixed(1)} µs per request: ~${Math.round(perCore)} req/s per core given to a worker, ~${Math.round(perCore * 4)} on 4, ~${Math.round(perCore * 8)} on 8`
  })
  // The throughput ratio above moves by more than 2% with any other work on the machine; the
  // decision's own CPU time, measured in-process, is the steadier view of the same target.
  const perRequest = byId.get('ficus-a/small')?.summary?.cpuUsPerRequest?.median
  const share = flagCost === undefined || perRequest === undefined ? undefined : flagCost.cpuUsPerDecision / perRequest
  out.push({
    label: 'flags cost < 2%: decision CPU time / ficus (a) CPU time per request',
    value: share,
    met: share === undefined ? undefined : share < FLAG_COST_BOUND,
    shown: share === undefined || flagCost === undefined ? 'not measured' : `${(share * 100).toFixed(2)}% (${flagCost.cpuUsPerDecision.toFixed(2)} µs of ${perRequest?.toFixed(1)} µs)`
  })
  const rss = byId.get('ficus-a/small')?.summary?.rssBytes
  out.push({
    label: 'RSS < 150 MB with 1,500 schools after the run',
    value: rss?.median,
    met: rss === undefined ? undefined : rss.median < RSS_TARGET_BYTES,
    shown: rss === undefined ? 'not measured' : `${(rss.median / 2 ** 20).toFixed(0)} MB median (${(rss.min / 2 ** 20).toFixed(0)}-${(rss.max / 2 ** 20).toFixed(0)})`
  })
  const semiRss = byId.get('ficus-a-semi8/small')?.summary?.rssBytes
  if (semiRss !== undefined) {
    out.push({
      label: '  same, ficus (a) with --max-semi-space-size=8',
      value: semiRss.median,
      met: semiRss.median < RSS_TARGET_BYTES,
      shown: `${(semiRss.median / 2 ** 20).toFixed(0)} MB median (${(semiRss.min / 2 ** 20).toFixed(0)}-${(semiRss.max / 2 ** 20).toFixed(0)})`
    })
  }
  const trips = redisPerRequest(byId.get('ficus-c/small'))
  const netTrips = netRedisPerRequest(byId.get('ficus-c/small'), connections)
  out.push({
    label: `session path (c): <= ${SESSION_ROUND_TRIPS_BOUND} Redis round trip per request`,
    value: netTrips,
    met: netTrips === undefined ? undefined : netTrips <= SESSION_ROUND_TRIPS_BOUND,
    shown: trips === undefined || netTrips === undefined
      ? 'not measured'
      : `${netTrips.toFixed(4)} commands per request (other clients' traffic taken off, requests in flight at wrk's stops counted), ${trips.toFixed(4)} as counted against completed requests`
  })
  const legacy = redisPerRequest(byId.get('ficus-a/small'))
  out.push({
    label: 'legacy-bound request without a session cookie: no Redis round trip',
    value: legacy,
    met: legacy === undefined ? undefined : legacy === 0,
    shown: legacy === undefined ? 'not measured' : `${legacy.toFixed(3)} commands per request`
  })
  const dRss = byId.get('ficus-d/small')?.summary?.rssBytes
  if (dRss !== undefined) {
    out.push({
      label: `RSS < 150 MB after scenario (d) (${SCHOOLS} schools from PostgreSQL, ${DATABASE_POOLS_MAX} pools)`,
      value: dRss.median,
      met: dRss.median < RSS_TARGET_BYTES,
      shown: `${(dRss.median / 2 ** 20).toFixed(0)} MB median (${(dRss.min / 2 ** 20).toFixed(0)}-${(dRss.max / 2 ** 20).toFixed(0)})`
    })
  }
  return out
}

/** Median over the rounds of the Redis commands per request of the measured run. */
function redisPerRequest (result: ScenarioResult | undefined): number | undefined {
  return spread((result?.samples ?? []).map((x) => x.redis === undefined ? undefined : x.redis.measured.total / Math.max(x.requests, 1)))?.median
}

/**
 * The same without what other clients sent meanwhile (their rate with the proxy idle, over the
 * run's duration), and counting the requests in flight when wrk stops the warm-up and the run
 * (up to one per connection each time): ficus serves them, wrk does not count them.
 */
function netRedisPerRequest (result: ScenarioResult | undefined, connections: number): number | undefined {
  return spread((result?.samples ?? []).map((x) => {
    if (x.redis === undefined) return undefined
    const others = (x.redis.backgroundPerSecond ?? 0) * x.requests / Math.max(x.rps, 1)
    return Math.max(0, x.redis.measured.total - others) / Math.max(x.requests + 2 * connections, 1)
  }))?.median
}

/** What the table cannot say: Redis commands per request, scenario (d)'s set-up and connections, (e)'s processes. */
function scenarioNotes (results: readonly ScenarioResult[], services: Services, connections: number): string[] {
  const notes: string[] = []
  notes.push(`ficus runs with ${services.sessions === undefined ? 'the in-memory session store (Redis unavailable)' : `REDIS_URL=${REDIS_URL} (SESSION_CODEC=json)`} and ` +
    `${services.databases === undefined ? 'the tenants file with embedded PGlite databases (PostgreSQL unavailable)' : `DATABASE_URL (${services.databases.schools} schools in the control database's tenants table)`}`)
  for (const r of results) {
    const last = r.samples.at(-1)
    if (last?.redis === undefined) continue
    const perRequest = redisPerRequest(r)
    const since = spread(r.samples.map((x) => x.redis === undefined ? undefined : x.redis.sinceStart.total))
    const commands = Object.entries(last.redis.measured.byCommand).map(([name, calls]) => `${name} ${calls}`).join(', ')
    const background = last.redis.backgroundPerSecond === undefined ? '' : `; other clients ${last.redis.backgroundPerSecond.toFixed(0)} commands/s with the proxy idle, ${netRedisPerRequest(r, connections)?.toFixed(4) ?? '-'} per request without them and with the up to ${2 * connections} requests in flight at wrk's stops`
    notes.push(`redis ${r.id}: ${perRequest?.toFixed(4) ?? '-'} commands per request in the measured run (last round: ${commands === '' ? 'none' : commands} for ${last.requests} requests${background}); ` +
      `${since === undefined ? '-' : Math.round(since.median)} commands from the proxy's start (probe + warm-up + run, ${last.redis.requestsSinceStart} requests in the last round)`)
  }
  const d = results.find((r) => r.id === 'ficus-d/small')
  const databases = services.databases
  if (d !== undefined && d.samples.length > 0 && databases !== undefined) {
    const peak = spread(d.samples.map((x) => x.pgPeakConnections))
    const limit = DATABASE_POOLS_MAX * DATABASE_POOL_SIZE
    notes.push(`scenario (d): ${databases.schools} schools registered in a control database's tenants table, spread over ${databases.databases} real school databases ` +
      `(school i on database i mod ${databases.databases}; each school has its own pool), created and seeded in ${(databases.setupMs / 1_000).toFixed(1)} s; ` +
      `TENANT_POOLS_MAX=${DATABASE_POOLS_MAX} TENANT_POOL_SIZE=${DATABASE_POOL_SIZE}; Host rotates over all ${SCHOOLS} schools`)
    notes.push(`scenario (d): peak server connections (pg_stat_activity, every ${CONNECTION_SAMPLE_MS} ms) ${peak?.max ?? '-'} against ${DATABASE_POOLS_MAX} x ${DATABASE_POOL_SIZE} = ${limit}: ` +
      `${peak === undefined ? 'not sampled' : peak.max <= limit ? 'within the bound' : 'OVER THE BOUND'}; RSS after the run ${fmt.mb(d.summary?.rssBytes)} MB`)
  }
  const bounced = results.find((r) => r.id === 'ficus-d-bouncer/small')
  if (bounced !== undefined && bounced.samples.length > 0 && databases !== undefined) {
    const server = spread(bounced.samples.map((x) => x.pgPeakConnections))
    const client = spread(bounced.samples.map((x) => x.bouncerPeak?.client))
    const limit = Math.min(databases.databases * PGBOUNCER_POOL_SIZE, PGBOUNCER_MAX_SERVER_CONNECTIONS)
    notes.push(`scenario (d-bouncer): the same schools and databases through a private PgBouncer (${services.bouncer?.version ?? '-'}) in transaction mode ` +
      `(default_pool_size=${PGBOUNCER_POOL_SIZE}, max_user_connections=${PGBOUNCER_MAX_SERVER_CONNECTIONS}); ficus with TENANT_POOLS_MAX=${SCHOOLS} TENANT_POOL_SIZE=${DATABASE_POOL_SIZE}: ` +
      `peak client connections ficus -> PgBouncer ${client?.max ?? '-'} (bound ${SCHOOLS} x ${DATABASE_POOL_SIZE}), peak server connections PgBouncer -> PostgreSQL (pg_stat_activity) ${server?.max ?? '-'} ` +
      `against min(${databases.databases} databases x ${PGBOUNCER_POOL_SIZE}, ${PGBOUNCER_MAX_SERVER_CONNECTIONS}) = ${limit}: ${server === undefined ? 'not sampled' : server.max <= limit ? 'within the bound' : 'OVER THE BOUND'}; ` +
      `against (d): ${compare(bounced, d)}`)
  }
  const hot = results.find((r) => r.id === 'ficus-d-hot/small')
  const hotThree = results.find((r) => r.id === 'ficus-d-hot-3rt/small')
  if (hot !== undefined && hotThree !== undefined && hot.samples.length > 0 && hotThree.samples.length > 0) {
    notes.push(`single-round-trip read: (d-hot), the register read in one round trip, against (d-hot-3rt), the same read in three (BEGIN + SET LOCAL, SELECT, COMMIT): ${compare(hot, hotThree)}`)
  }
  for (const r of results) if ((r.failures ?? 0) > 0) notes.push(`${r.id}: failed to start in ${r.failures} round(s), left out of them (see the log)`)
  const e = results.find((r) => r.id === 'ficus-e/small')
  if (e !== undefined && e.samples.length > 0) {
    notes.push(`scenario (e): proxy/main.ts with WORKERS=2 ran as ${e.samples[0]?.processes ?? '-'} processes (primary + workers) on both cores, sharing core ${LOAD_CPU} with wrk and the upstream; CPU and RSS are summed over them`)
  }
  return notes
}

/** req/s, p99 and CPU per request of `a` over `b`, medians of the same run. */
function compare (a: ScenarioResult, b: ScenarioResult | undefined): string {
  const ratio = (x: number | undefined, y: number | undefined): string => x === undefined || y === undefined || y === 0 ? '-' : (x / y).toFixed(2)
  const sa = a.summary
  const sb = b?.summary
  if (sb === undefined || sa === undefined) return 'not measured in this run'
  return `req/s ${Math.round(sa.rps?.median ?? 0)} vs ${Math.round(sb.rps?.median ?? 0)} (${ratio(sa.rps?.median, sb.rps?.median)}x), ` +
    `p99 ${fmt.ms(sa.p99Us)} vs ${fmt.ms(sb.p99Us)} ms (${ratio(sa.p99Us?.median, sb.p99Us?.median)}x), ` +
    `CPU ${sa.cpuUsPerRequest?.median.toFixed(1) ?? '-'} vs ${sb.cpuUsPerRequest?.median.toFixed(1) ?? '-'} µs/req`
}

function timestamp (): string {
  return new Date().toISOString().replace(/[:.]/g, '-')
}

async function runTable (bench: Bench, settings: Settings, tools: Tools): Promise<void> {
  const results: ScenarioResult[] = SCENARIOS
    .filter((s) => selected(settings, s.id))
    .map((s) => ({ id: s.id, label: s.label, ...(s.pending === undefined ? {} : { pending: s.pending }), samples: [] }))
  for (const r of results) {
    const scenario = SCENARIOS.find((s) => s.id === r.id)
    const missing = scenario === undefined ? undefined : bench.unavailable(scenario)
    if (r.pending === undefined && missing !== undefined) r.pending = missing
  }
  const runnable = SCENARIOS.filter((s) => results.some((r) => r.id === s.id && r.pending === undefined))
  const started = Date.now()
  for (let round = 0; round < settings.rounds; round++) {
    // Each round starts one scenario further on, so no contender always runs first or last.
    const order = runnable.map((_, i) => runnable[(i + round) % runnable.length] as Scenario)
    for (const scenario of order) {
      const result = results.find((r) => r.id === scenario.id)
      if (result === undefined || result.pending !== undefined) continue
      let sample: Sample
      try {
        sample = await bench.measure(scenario, round)
      } catch (error) {
        if (!(error instanceof NotRunnable)) {
          // One failed start (a port taken by someone else) costs its round, not the whole run.
          log(`${scenario.id}: FAILED in round ${round + 1}, left out of this round: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`)
          result.failures = (result.failures ?? 0) + 1
          continue
        }
        result.pending = error.message
        log(`${scenario.id}: pending, ${error.message}`)
        continue
      }
      result.samples.push(sample)
      const warn = sample.errors > 0 ? `  ${sample.errors} ERRORS` : ''
      const redis = sample.redis === undefined ? '' : `  redis ${(sample.redis.measured.total / Math.max(sample.requests, 1)).toFixed(3)}/req`
      const pg = (sample.pgPeakConnections === undefined ? '' : `  pg peak ${sample.pgPeakConnections} conns`) +
        (sample.bouncerPeak === undefined ? '' : ` (ficus -> pgbouncer ${sample.bouncerPeak.client})`)
      log(`round ${round + 1}/${settings.rounds}  ${scenario.id.padEnd(22)} ${Math.round(sample.rps).toString().padStart(6)} req/s  p99 ${(sample.p99Us / 1_000).toFixed(2)} ms  ` +
        `cpu ${sample.cpuUsPerRequest?.toFixed(1) ?? '-'} µs/req  load core ${sample.loadCorePercent.toFixed(0)}%  other on proxy core ${sample.proxyCoreOtherPercent.toFixed(0)}%${redis}${pg}${warn}`)
    }
  }
  for (const r of results) if (r.samples.length > 0) summarise(r)
  const measuredA = results.some((r) => r.id === 'ficus-a/small' && r.samples.length > 0)
  const flagCost = measuredA ? await bench.flagCost() : undefined
  const ownWork = measuredA ? await profileOwnWork(bench, results.find((r) => r.id === 'ficus-a/small')?.summary?.cpuUsPerRequest?.median) : undefined
  const notes = scenarioNotes(results, bench.services, settings.connections)

  const rows = tableRows(results)
  const ratioList = ratios(results)
  const ratio = ratioTable(ratioList)
  const targets = checkTargets(results, flagCost, settings.connections, ownWork)
  const about = machine(tools)
  const settingsLine = `${settings.rounds} round(s), ${settings.warmup}s warm-up + ${settings.seconds}s measured, wrk -t1 -c${settings.connections}, ` +
    `proxy on CPU ${PROXY_CPU}, wrk + nginx upstream on CPU ${LOAD_CPU}, Node contenders with MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD}`
  log('')
  log(`machine: ${about.cpu}, ${about.cores} cores, ${about.kernel}, ${about.node}, ${about.nginx}, ${about.wrk}, load ${about.loadAverageAtStart}`)
  log(`settings: ${settingsLine}${settings.nodeFlags.length > 0 ? `, every Node contender with ${settings.nodeFlags.join(' ')}` : ''}${settings.ficusNodeFlags.length > 0 ? `, ficus with ${settings.ficusNodeFlags.join(' ')}` : ''}`)
  log('')
  log(textTable(COLUMNS, rows))
  for (const r of results) if (r.pending !== undefined) log(`  ${r.id} ${r.label}: pending, ${r.pending}`)
  log('')
  for (const note of notes) log(note)
  log('')
  log(textTable(ratio.header, ratio.rows))
  log('')
  if (ownWork !== undefined) {
    log(`ficus's own work on the legacy path, by innermost ficus function (profile of ficus-a/small, % of busy time):`)
    for (const cost of ownWork.top) log(`  ${cost.percent.toFixed(2).padStart(6)}%  ${cost.name}`)
    log('')
  }
  log('targets (issues 7, 13, 14):')
  for (const t of targets) log(`  ${t.met === undefined ? 'n/a ' : t.met ? 'MET ' : 'MISS'}  ${t.label}: ${t.shown}`)
  const busy = results.filter((r) => (r.summary?.proxyCoreOtherPercent?.median ?? 0) > NOISY_PERCENT)
  if (busy.length > 0) log(`\nnote: other work took > ${NOISY_PERCENT}% of the proxy core during ${busy.map((r) => r.id).join(', ')}; treat those numbers with care`)
  log(`\n(${Math.round((Date.now() - started) / 1_000)} s)`)

  mkdirSync(RESULTS_DIR, { recursive: true })
  const stamp = timestamp()
  const json = join(RESULTS_DIR, `bench-${settings.mode}-${stamp}.json`)
  writeFileSync(json, JSON.stringify({ machine: about, services: bench.services, notes, settings: { ...settings, mallocTrimThreshold: MALLOC_TRIM_THRESHOLD, proxyCpu: PROXY_CPU, loadCpu: LOAD_CPU }, results, ratios: ratioList, flagCost, targets }, null, 2))
  const markdown = join(RESULTS_DIR, `bench-${settings.mode}-${stamp}.md`)
  writeFileSync(markdown, [`Machine: ${about.cpu}, ${about.cores} cores, ${about.memoryGiB} GiB, Linux ${about.kernel}, Node ${about.node}, ${about.nginx}, ${about.wrk}`,
    `Settings: ${settingsLine}`, '', markdownTable(COLUMNS, rows), '',
    ...results.filter((r) => r.pending !== undefined).map((r) => `- ${r.id} ${r.label}: pending, ${r.pending}`), '',
    ...notes.map((note) => `- ${note}`), '',
    markdownTable(ratio.header, ratio.rows), '',
    ...(ownWork === undefined ? [] : ['ficus\'s own work by innermost ficus function (profile of ficus-a/small, % of busy time):', '', ...ownWork.top.map((cost) => `- ${cost.percent.toFixed(2)}% ${cost.name}`), '']),
    ...targets.map((t) => `- ${t.met === undefined ? 'n/a' : t.met ? 'met' : '**missed**'}: ${t.label}: ${t.shown}`)].join('\n') + '\n')
  log(`results: ${json}\n         ${markdown}`)
}

/** Profiles ficus (a) once more after the table, for its own-work figure. */
async function profileOwnWork (bench: Bench, cpuUsPerRequest: number | undefined): Promise<OwnWorkFigure | undefined> {
  const scenario = SCENARIOS.find((s) => s.id === 'ficus-a/small')
  if (scenario === undefined || cpuUsPerRequest === undefined) return undefined
  log('profiling ficus-a/small for its own-work figure')
  const { file, result, warmupMs } = await bench.profile(scenario, join(RESULTS_DIR, `profile-${timestamp()}`))
  // The steady state's: counted from the end of the warm-up, over the measured run's requests.
  const own = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, undefined, warmupMs).ownWork
  return {
    usPerRequest: own.percent / 100 * cpuUsPerRequest,
    profiledUsPerRequest: own.ms * 1_000 / Math.max(result.requests, 1),
    percent: own.percent,
    top: own.byFunction.slice(0, 12)
  }
}

async function runProfile (bench: Bench, settings: Settings): Promise<void> {
  const scenario = SCENARIOS.find((s) => s.id === settings.profileScenario && s.pending === undefined)
  if (scenario === undefined || scenario.contender.kind !== 'node') throw new Error(`--profile-scenario must name a runnable Node scenario, e.g. ficus-a/small (got ${settings.profileScenario})`)
  const stamp = timestamp()
  const dir = join(RESULTS_DIR, `profile-${stamp}`)
  log(`profiling ${scenario.id} for ${settings.seconds}s under --cpu-prof (throughput is lower than unprofiled)`)
  const { file, result } = await bench.profile(scenario, dir)
  const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile)
  log(`${Math.round(result.requests / (result.durationUs / 1e6))} req/s while profiling, ${errorCount(result)} errors`)
  log(formatSummary(summary))
  writeFileSync(join(dir, 'summary.json'), JSON.stringify({ scenario: scenario.id, profile: file, summary }, null, 2))
  log(`profile: ${file}\nsummary: ${join(dir, 'summary.json')}`)
}

function selected (settings: Settings, id: string): boolean {
  return settings.only === undefined || settings.only.some((part) => id.includes(part))
}

function selectedIds (settings: Settings): string[] {
  return SCENARIOS.filter((s) => s.pending === undefined && selected(settings, s.id)).map((s) => s.id)
}

function needsOf (ids: readonly string[]): { redis: boolean, postgres: boolean, pgbouncer: boolean } {
  const scenarios = SCENARIOS.filter((s) => ids.includes(s.id))
  const ficus = scenarios.some((s) => s.contender.ficus)
  return { redis: ficus, postgres: ficus, pgbouncer: scenarios.some((s) => s.databasePath === 'pgbouncer') }
}

async function setUpServices (needs: { redis: boolean, postgres: boolean, pgbouncer: boolean }, settings: Settings): Promise<Services> {
  const services: Services = { missing: {} }
  if (needs.redis) {
    try {
      // Scenario (d) visits every school, signed in as that school's teacher.
      services.sessions = await createBenchSessions(SCHOOLS)
      log(`redis: ${SCHOOLS} sessions written under ${services.sessions.prefix}`)
    } catch (error) {
      services.missing.redis = (error as Error).message
      log(`redis not available (${(error as Error).message}): scenarios needing it are pending`)
    }
  }
  if (needs.postgres) {
    try {
      const dropped = await dropBenchDatabases()
      if (dropped > 0) log(`postgres: dropped ${dropped} database(s) left by an earlier run`)
      log(`postgres: creating ${settings.schoolDatabases} school databases for ${SCHOOLS} schools and a control database...`)
      services.databases = await createSchoolDatabases(SCHOOLS, settings.schoolDatabases, cohortsOf)
      log(`postgres: ready in ${(services.databases.setupMs / 1_000).toFixed(1)} s`)
    } catch (error) {
      services.missing.postgres = (error as Error).message
      log(`postgres not available (${(error as Error).message}): scenario (d) is pending, the others read the tenants file`)
    }
  }
  if (needs.pgbouncer && services.databases !== undefined) {
    try {
      const bouncer = await startBenchBouncer()
      await bouncer.stop()
      services.bouncer = { version: versionOf('pgbouncer', ['--version']) }
      log(`pgbouncer: ${services.bouncer.version}, started in transaction mode for each (d-bouncer) measurement`)
    } catch (error) {
      services.missing.pgbouncer = (error as Error).message
      log(`pgbouncer not available (${(error as Error).message}): scenario (d-bouncer) is pending`)
    }
  }
  return services
}

/** (d-bouncer)'s PgBouncer: its budget towards PostgreSQL, and room for a pool per school. */
function startBenchBouncer (): Promise<PgBouncer> {
  return startPgBouncer({
    poolSize: PGBOUNCER_POOL_SIZE,
    maxUserConnections: PGBOUNCER_MAX_SERVER_CONNECTIONS,
    maxClientConnections: SCHOOLS * DATABASE_POOL_SIZE + 100
  })
}

async function tearDownServices (services: Services): Promise<void> {
  await services.sessions?.close().catch((error: Error) => log(`redis clean-up failed: ${error.message}`))
  if (services.databases !== undefined) {
    const started = Date.now()
    const dropped = await dropBenchDatabases().catch((error: Error) => { log(`postgres clean-up failed: ${error.message}`); return 0 })
    log(`postgres: dropped ${dropped} bench database(s) in ${((Date.now() - started) / 1_000).toFixed(1)} s`)
  }
}

async function main (): Promise<void> {
  const settings = parseSettings()
  const tools = ensureTools(log)
  if (cpus().length < 2) throw new Error('the bench needs two cores: one for the proxy, one for the load and the upstream')
  build()
  const fixtures = writeFixtures()
  const services = settings.mode === 'profile' ? await setUpServices(needsOf([settings.profileScenario]), settings) : await setUpServices(needsOf(selectedIds(settings)), settings)
  const bench = new Bench(tools, fixtures, settings, services)
  const cleanUp = async (): Promise<void> => {
    await bench.stop()
    await tearDownServices(services)
    rmSync(fixtures.dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { void cleanUp().finally(() => process.exit(130)) })
  try {
    await bench.startUpstream()
    if (settings.mode === 'profile') await runProfile(bench, settings)
    else await runTable(bench, settings, tools)
  } finally {
    await cleanUp()
  }
}

await main()
