// Test kit for the flag integration tests: ficus as it runs in production (`node proxy/main.ts`,
// flags from an Unleash server) in its own process, in front of a recording legacy, with clients
// for its public port (one Host per school) and its admin port (/readyz, /decisions); plus the
// flag set-ups a product owner makes in Unleash, applied through the Admin API.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { migratedRoutes } from '../../new-routes/index.ts'
import type { MigratedRoute } from '../../core/route.ts'
import { spawnFicus, writeJson, type FicusProcess, type LogLine } from './proxy-kit.ts'
import { mapLimit, startRecordingLegacy, type RecordingLegacy, type TeardownHost } from './recording-legacy.ts'
import { UnleashAdminError, type Constraint, type FlagType, type StrategyInput, type UnleashServer } from './unleash.ts'

// Short enough that a flip is seen well within the 2 s, with margin on a busy machine.
export const TEST_REFRESH_MS = 500
const READY_TIMEOUT_MS = 30_000
const SERVING_TIMEOUT_MS = 30_000
const REQUEST_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 15_000
const SIDE_POLL_MS = 10
const HTTP_CONFLICT = 409
export const BASE_DOMAIN = 'localhost'

/** A migrated route of the real route list, by name, with the path that reaches it. */
export function declaredRoute (name: string): MigratedRoute {
  const route = migratedRoutes.find((candidate) => candidate.name === name)
  if (route === undefined) throw new Error(`no migrated route named ${name}: ${migratedRoutes.map((r) => r.name).join(', ')}`)
  if (route.url.includes(':') || route.url.includes('*')) throw new Error(`route ${name} has a parametric url ${route.url}`)
  return route
}

export interface School {
  readonly id: string
  readonly cohorts?: readonly string[]
}

/** Where ficus gets its flags: a running test server, or any URL (a dead one, a stub). */
export interface UnleashEndpoint {
  readonly apiUrl: string
  readonly clientToken: string
}

export interface FicusOptions {
  readonly unleash: UnleashEndpoint
  readonly schools: readonly School[]
  /** Shared by several ficus processes; by default each gets its own. */
  readonly legacy?: RecordingLegacy
  /** On top of the kit's environment: KILL_SWITCH_FLAG, FLAGS_FILE (bootstrap), ... */
  readonly env?: Readonly<Record<string, string>>
  /** Wait for /readyz to answer 200 before returning; default true. */
  readonly waitReady?: boolean
}

export type Side = 'new' | 'legacy'

export interface PublicAnswer {
  readonly status: number
  readonly servedBy: string | undefined
  readonly body: string
}

export interface FlagsReadiness {
  readonly ready: boolean
  readonly detail: { readonly ready: boolean, readonly source: string, readonly staleForMs?: number, readonly sourceReachable: boolean }
}

export interface Readyz {
  readonly status: number
  readonly body: { readonly status: string, readonly checks: { readonly flags: FlagsReadiness } }
}

export interface RunningFicus {
  readonly process: FicusProcess
  readonly origin: string
  readonly adminOrigin: string
  readonly legacy: RecordingLegacy
  readonly backupDir: string
  /** GET `path` on the public port with the Host of `school`. */
  get (school: string, path: string, headers?: Record<string, string>): Promise<PublicAnswer>
  readyz (): Promise<Readyz>
  decisions (school: string): Promise<{ status: number, body: unknown }>
  /** Polls the public port until `school` is served by `side` on `path`; resolves with the ms it took. */
  waitForSide (school: string, path: string, side: Side, timeoutMs: number): Promise<number>
  /** Polls /readyz until `holds`; resolves with the last answer. */
  waitForReadyz (holds: (readyz: Readyz) => boolean, what: string, timeoutMs: number): Promise<Readyz>
  logs (match: (line: LogLine) => boolean): LogLine[]
  /** SIGTERM, then the exit code and signal (bounded wait). */
  stop (): Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Starts one ficus process with flags from `options.unleash`; stopped at teardown. */
export async function startFicus (t: TeardownHost, options: FicusOptions): Promise<RunningFicus> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-process-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tenantsFile = join(dir, 'tenants.json')
  // Each process keeps its own backup: a shared one would let a process start from another's flags.
  const backupDir = join(dir, 'unleash-backup')
  writeJson(tenantsFile, { tenants: options.schools.map((school) => ({ id: school.id, name: school.id, status: 'active', cohorts: school.cohorts ?? [] })) })
  mkdirSync(backupDir)
  const legacy = options.legacy ?? await startRecordingLegacy(t)

  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    BASE_DOMAIN,
    LEGACY_URL: legacy.url,
    TENANTS_FILE: tenantsFile,
    UNLEASH_URL: options.unleash.apiUrl,
    UNLEASH_API_TOKEN: options.unleash.clientToken,
    UNLEASH_APP_NAME: 'ficus',
    UNLEASH_REFRESH_MS: String(TEST_REFRESH_MS),
    UNLEASH_BACKUP_DIR: backupDir,
    // These tests count legacy's requests exactly, and stop processes often.
    PREWARM_LEGACY_CONNECTIONS: '0',
    DRAIN_DELAY_MS: '0',
    LOG_LEVEL: 'info',
    ...options.env
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving', SERVING_TIMEOUT_MS)
  const origin = String(serving.public)
  const adminOrigin = String(serving.admin)
  const publicPool = new Pool(origin, { connections: 16, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
  const adminPool = new Pool(adminOrigin, { connections: 4, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
  t.teardown(() => Promise.all([publicPool.destroy(), adminPool.destroy()]))

  const get = async (school: string, path: string, headers: Record<string, string> = {}): Promise<PublicAnswer> => {
    const response = await publicPool.request({ method: 'GET', path, headers: { host: `${school}.${BASE_DOMAIN}`, ...headers } })
    const servedBy = response.headers['x-served-by']
    return { status: response.statusCode, servedBy: Array.isArray(servedBy) ? servedBy.join(', ') : servedBy, body: await response.body.text() }
  }
  const adminGet = async (path: string): Promise<{ status: number, body: unknown }> => {
    const response = await adminPool.request({ method: 'GET', path })
    return { status: response.statusCode, body: await response.body.json() }
  }
  const readyz = async (): Promise<Readyz> => (await adminGet('/readyz')) as Readyz

  const running: RunningFicus = {
    process: ficus,
    origin,
    adminOrigin,
    legacy,
    backupDir,
    get,
    readyz,
    decisions: (school) => adminGet(`/decisions?tenant=${encodeURIComponent(school)}`),
    async waitForSide (school, path, side, timeoutMs) {
      const start = performance.now()
      let last: PublicAnswer | undefined
      while (performance.now() - start < timeoutMs) {
        last = await get(school, path)
        if (last.servedBy === side) return performance.now() - start
        await sleep(SIDE_POLL_MS)
      }
      throw new Error(`${school} ${path} still served by ${last?.servedBy ?? 'nobody'} (status ${last?.status ?? '-'}) after ${timeoutMs} ms, expected ${side}`)
    },
    async waitForReadyz (holds, what, timeoutMs) {
      let last: Readyz | undefined
      await waitForAsync(async () => holds(last = await readyz()), timeoutMs, () => `/readyz: ${what}; last answer ${JSON.stringify(last)}`)
      return last as Readyz
    },
    logs: (match) => ficus.logs.filter(match),
    async stop () {
      await Promise.all([publicPool.close(), adminPool.close()])
      if (ficus.child.exitCode === null && ficus.child.signalCode === null) ficus.child.kill('SIGTERM')
      const timer = setTimeout(() => ficus.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      try {
        return await ficus.exited
      } finally {
        clearTimeout(timer)
      }
    }
  }
  if (options.waitReady ?? true) await running.waitForReadyz((answer) => answer.status === 200, 'ready', READY_TIMEOUT_MS)
  return running
}

export { mapLimit }

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function waitForAsync (condition: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)
    await sleep(SIDE_POLL_MS * 5)
  }
}

// ---------------------------------------------------------------------------------------------
// Flags in Unleash, set the way a product owner sets them.

/** The context fields ficus sends, declared on the server so constraints may use them. */
export async function declareContextFields (server: UnleashServer): Promise<void> {
  await server.admin.createContextField({ name: 'tenantId', description: 'School (sub-domain label)', stickiness: true })
  await server.admin.createContextField({ name: 'cohort', description: 'One cohort of the school' })
  await server.admin.createContextField({ name: 'route', description: 'Migrated route name' })
}

export interface FlagSetup {
  readonly type?: FlagType
  readonly enabled: boolean
  readonly strategies: readonly StrategyInput[]
}

/**
 * Gives `flag` exactly these strategies and state, then waits until SDKs are served that state
 * (the server answers SDKs from a per-revision cache that lags the Admin API by about a second).
 */
export async function configureFlag (server: UnleashServer, flag: string, setup: FlagSetup): Promise<void> {
  const env = server.environment
  try {
    await server.admin.createFlag(flag, setup.type ?? 'release')
  } catch (error) {
    if (!(error instanceof UnleashAdminError && error.status === HTTP_CONFLICT)) throw error
  }
  await server.admin.disable(flag, env)
  for (const strategy of await server.admin.listStrategies(flag, env)) await server.admin.deleteStrategy(flag, env, strategy.id)
  for (const strategy of setup.strategies) await server.admin.addStrategy(flag, env, strategy)
  if (setup.enabled) await server.admin.enable(flag, env)
  await server.served((features) => {
    const served = features.find((feature) => feature.name === flag)
    if (served === undefined || served.enabled !== setup.enabled) return false
    if (setup.strategies.length === 0) return true
    return served.strategies.length === setup.strategies.length &&
      served.strategies.every((strategy, i) => sameStrategy(strategy, setup.strategies[i]))
  })
}

function sameStrategy (served: { name: string, constraints?: Constraint[], parameters?: Record<string, string> }, wanted: StrategyInput | undefined): boolean {
  if (wanted === undefined || served.name !== wanted.name) return false
  if (wanted.parameters?.rollout !== undefined && served.parameters?.rollout !== wanted.parameters.rollout) return false
  const key = (constraints: readonly Constraint[] | undefined): string =>
    JSON.stringify((constraints ?? []).map((c) => [c.contextName, c.operator, [...(c.values ?? [])].sort()]))
  return key(served.constraints) === key(wanted.constraints)
}
