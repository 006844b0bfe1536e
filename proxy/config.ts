// The only module that reads the environment. Every variable is validated here, every problem is
// reported at once (each naming the variable and a valid example), and the result is frozen and
// passed down as an argument.
import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { parseSessionConfig, type SessionConfig } from '../sessions/config.ts'
import { parseTenantDbConfig, type TenantDbConfig } from '../tenant-db/config.ts'
import { parseSafetyConfig, type SafetyConfig } from '../safety/config.ts'
import { ALL_ACTIVE, COHORT_ENTRY_PATTERN } from '../safety/prewarm-schools.ts'
import { parseConsoleConfig, type ConsoleConfig } from '../console/config.ts'
import { parseAccessConfig, type AccessConfig } from '../access/config.ts'
import { TENANT_ID_PATTERN } from '../tenants/tenant.ts'
import { fileURLToPath } from 'node:url'
import { readOneOf, readSet, readWholeNumber, type Env } from '../config/env.ts'
import { StartupErrors, type StartupCode } from './errors.ts'
import { allowedHeaderProblem } from '../legacy-adapter/headers.ts'
import { parseLegacyTable, PROTOCOL, type LegacyTableSpec } from '../legacy-adapter/upstreams.ts'

// The demo's files stay in the source tree; this module runs from proxy/ or from dist/proxy/.
const PROJECT_ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../' : '../', import.meta.url))
const DEMO_DIR = PROJECT_ROOT + 'demo/'

export const DEFAULTS = Object.freeze({
  PORT: 8080,
  HOST: '0.0.0.0',
  /** HOST while any embedded default is in use: a demo with no secrets stays on this machine. */
  EMBEDDED_HOST: '127.0.0.1',
  BASE_DOMAIN: 'localhost',
  BARE_DOMAIN: 'not-found' as BareDomainPolicy,
  TENANTS_FILE: DEMO_DIR + 'tenants.json',
  FLAGS_FILE: DEMO_DIR + 'flags.json',
  FLAGS_POLL_MS: 500,
  UNLEASH_APP_NAME: 'ficus',
  UNLEASH_ENVIRONMENT: 'default',
  UNLEASH_REFRESH_MS: 1_000,
  UNLEASH_BACKUP_DIR: tmpdir(),
  FLAG_GONE_AFTER_MS: 0,
  DEMO_LEGACY_PORT: 8081,
  LEGACY_TIMEOUT_MS: 30_000,
  LEGACY_CONNECTIONS: 128,
  LEGACY_KEEP_ALIVE_MS: 4_000,
  PRESERVE_HOST: true,
  SESSION_COOKIE_HOST_ONLY: true,
  SERVED_BY_HEADER: 'x-served-by',
  REQUEST_ID_HEADER: 'x-request-id',
  REQUEST_TIMEOUT_MS: 60_000,
  HEADERS_TIMEOUT_MS: 20_000,
  KEEP_ALIVE_TIMEOUT_MS: 72_000,
  CLIENT_IDLE_TIMEOUT_MS: 120_000,
  MAX_HEADER_BYTES: 16_384,
  BODY_LIMIT_BYTES: 1_048_576,
  LEGACY_BODY_LIMIT_BYTES: 104_857_600,
  ADMIN_PORT: 9090,
  ADMIN_HOST: '127.0.0.1',
  LOG_LEVEL: 'info',
  ACCESS_LOG: true,
  METRICS_MAX_COHORTS: 20,
  DRAIN_DELAY_MS: 5_000,
  SHUTDOWN_TIMEOUT_MS: 30_000,
  WORKERS: 1,
  PREWARM_LEGACY_CONNECTIONS: 4,
  PREWARM_PATH: '/',
  PREWARM_TIMEOUT_MS: 5_000,
  PREWARM_CONCURRENCY: 16,
  TUNNEL_MAX: 1_000,
  TUNNEL_IDLE_TIMEOUT_MS: 300_000,
  TUNNEL_MAX_LIFETIME_MS: 14_400_000
})

export type BareDomainPolicy = 'not-found' | 'legacy'

export interface Config {
  readonly port: number
  readonly host: string
  /** True when HOST was not set and the default above applies. */
  readonly hostIsDefault: boolean
  /** The embedded stand-ins in use (`legacy app`, ...): each is a demo default, not for production. */
  readonly embedded: readonly string[]
  readonly baseDomain: string
  /** What the bare base domain (no school in front) gets. */
  readonly bareDomain: BareDomainPolicy
  readonly tenantsFile: string
  readonly flagsFile: string
  readonly flagsPollMs: number
  /** Set when UNLEASH_URL is: flags come from that server instead of the flags file. */
  readonly unleash: UnleashConfig | undefined
  /** A route flag missing from its source this long counts as gone (whenFlagMissing); 0 = never. */
  readonly flagGoneAfterMs: number
  /** An Unleash kill-switch flag that, when on, sends every migrated route to legacy. */
  readonly killSwitchFlag: string | undefined
  /** Undefined: ficus starts the embedded demo legacy app on `demoLegacyPort`. */
  readonly legacyUrl: string | undefined
  /** LEGACY_UPSTREAMS: several legacy apps by path prefix (legacyUrl is then its default's URL). */
  readonly legacyTable: LegacyTableSpec | undefined
  readonly demoLegacyPort: number
  /** Upgrade protocols (lower case) tunnelled to the one LEGACY_URL upstream; empty: upgrades are refused. */
  readonly legacyUpgrades: readonly string[]
  /** Open upgrade tunnels: idle limit, total lifetime, how many at once per process. */
  readonly tunnels: { readonly idleMs: number, readonly lifetimeMs: number, readonly max: number }
  readonly legacyTimeoutMs: number
  readonly legacyConnections: number
  readonly legacyKeepAliveMs: number
  readonly preserveHost: boolean
  /** Lower-case header name, or undefined when the header is disabled. */
  readonly servedByHeader: string | undefined
  readonly requestIdHeader: string
  /** Client addresses (or CIDR ranges) whose X-Forwarded-* headers are believed. */
  readonly trustedProxies: readonly string[]
  /** Lower-case header names dropped by default (overrides, names with `_`) that legacy still gets. */
  readonly legacyAllowHeaders: readonly string[]
  /** Remove the Domain attribute of legacy's session cookie, so it stays on the school's host. */
  readonly sessionCookieHostOnly: boolean
  readonly requestTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** A client connection with no bytes moving either way for this long is closed. */
  readonly clientIdleTimeoutMs: number
  readonly maxHeaderBytes: number
  readonly bodyLimitBytes: number
  readonly legacyBodyLimitBytes: number
  readonly adminPort: number
  readonly adminHost: string
  readonly adminToken: string | undefined
  readonly logLevel: string
  readonly sessions: SessionConfig
  /** Who is signed in (from the session), the sign-in page, CSRF. */
  readonly access: AccessConfig
  /** The control database and the schools' databases (embedded PGlite without DATABASE_URL). */
  readonly tenantDb: TenantDbConfig
  readonly safety: SafetyConfig
  /** The migration console on the admin listener. */
  readonly console: ConsoleConfig
  /** One JSON line per request (ACCESS_LOG). */
  readonly accessLog: boolean
  /** Distinct cohort label values in metrics; later cohorts count as `other`. */
  readonly metricsMaxCohorts: number
  /** After SIGTERM: /readyz is 503 and ficus keeps serving this long before it stops accepting. */
  readonly drainDelayMs: number
  /** Requests still in flight this long after the listener closed are cut. */
  readonly shutdownTimeoutMs: number
  /** Processes serving the public port (node:cluster) when above 1. */
  readonly workers: number
  /** Set by the primary in each worker it forks (1..WORKERS); undefined outside a cluster. */
  readonly workerIndex: number | undefined
  /** Connections opened to legacy before /readyz reports ready; 0 disables. */
  readonly prewarmLegacyConnections: number
  readonly prewarmPath: string
  readonly prewarmTimeoutMs: number
  /** Schools whose databases are opened before /readyz reports ready: ids, `cohort:<name>`, `all-active`. */
  readonly prewarmSchools: readonly string[]
  /** School databases opened at once by the pre-warm. */
  readonly prewarmConcurrency: number
}

export interface UnleashConfig {
  readonly url: string
  readonly apiToken: string
  readonly appName: string
  readonly environment: string
  readonly refreshIntervalMs: number
  readonly backupDir: string
  /** FLAGS_FILE when it is set explicitly: served from until the server first answers. */
  readonly bootstrapFile: string | undefined
}

export class ConfigError extends Error {
  readonly code: StartupCode = 'FICUS_ERR_CONFIG'
  readonly problems: readonly string[]

  constructor (problems: readonly string[]) {
    super(`${StartupErrors.table.FICUS_ERR_CONFIG.message}:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}


export function parseConfig (env: Env): Config {
  const problems: string[] = []
  const read = new EnvReader(env, problems)

  const singleLegacyUrl = read.url('LEGACY_URL', 'http://legacy.internal:8080')
  const legacyDefaults = {
    timeoutMs: read.integer('LEGACY_TIMEOUT_MS', DEFAULTS.LEGACY_TIMEOUT_MS, 1, 3_600_000),
    connections: read.integer('LEGACY_CONNECTIONS', DEFAULTS.LEGACY_CONNECTIONS, 1, 65_536),
    keepAliveMs: read.integer('LEGACY_KEEP_ALIVE_MS', DEFAULTS.LEGACY_KEEP_ALIVE_MS, 1, 3_600_000)
  }
  const legacyTable = readLegacyTable(env, legacyDefaults, problems)
  if (legacyTable !== undefined && singleLegacyUrl !== undefined) {
    problems.push('LEGACY_URL and LEGACY_UPSTREAMS exclude each other: LEGACY_URL is the one-upstream shorthand, e.g. unset LEGACY_URL and give LEGACY_UPSTREAMS a "default"')
  }
  const legacyUrl = legacyTable === undefined ? singleLegacyUrl : legacyTable.upstreams.find((upstream) => upstream.name === legacyTable.default)?.url
  const flagsFile = read.file('FLAGS_FILE', DEFAULTS.FLAGS_FILE, '/etc/ficus/flags.json')
  const unleashUrl = read.url('UNLEASH_URL', 'http://unleash.internal:4242/api')
  const unleashToken = read.optionalString('UNLEASH_API_TOKEN', 1, 'default:production.4f1c...')
  if (unleashUrl !== undefined && unleashToken === undefined) {
    problems.push('UNLEASH_API_TOKEN is required with UNLEASH_URL: a client (backend) token, e.g. UNLEASH_API_TOKEN=default:production.4f1c...')
  }
  // Read even without UNLEASH_URL, so that a mistake in them is reported before it matters.
  const unleashSettings = {
    appName: read.string('UNLEASH_APP_NAME', DEFAULTS.UNLEASH_APP_NAME),
    environment: read.string('UNLEASH_ENVIRONMENT', DEFAULTS.UNLEASH_ENVIRONMENT),
    refreshIntervalMs: read.integer('UNLEASH_REFRESH_MS', DEFAULTS.UNLEASH_REFRESH_MS, 100, 600_000),
    backupDir: read.string('UNLEASH_BACKUP_DIR', DEFAULTS.UNLEASH_BACKUP_DIR)
  }
  const unleash: UnleashConfig | undefined = unleashUrl === undefined
    ? undefined
    : Object.freeze({
      url: unleashUrl,
      apiToken: unleashToken ?? '',
      ...unleashSettings,
      bootstrapFile: env.FLAGS_FILE === undefined ? undefined : flagsFile
    })
  const servedBy = env.SERVED_BY_HEADER ?? DEFAULTS.SERVED_BY_HEADER
  if (servedBy !== '' && !/^[A-Za-z0-9-]+$/.test(servedBy)) {
    problems.push('SERVED_BY_HEADER must be a header name, or empty to disable it, e.g. X-Served-By')
  }
  const embedded = [
    ...(legacyUrl === undefined ? ['legacy app (LEGACY_URL)'] : []),
    ...(env.DATABASE_URL === undefined || env.DATABASE_URL.trim() === '' ? ['school databases in PGlite (DATABASE_URL)'] : []),
    ...(env.REDIS_URL === undefined || env.REDIS_URL.trim() === '' ? ['session store in memory (REDIS_URL)'] : [])
  ]
  const config: Config = {
    port: read.port('PORT', DEFAULTS.PORT),
    host: read.string('HOST', embedded.length > 0 ? DEFAULTS.EMBEDDED_HOST : DEFAULTS.HOST),
    hostIsDefault: env.HOST === undefined || env.HOST.trim() === '',
    embedded,
    baseDomain: read.baseDomain('BASE_DOMAIN', DEFAULTS.BASE_DOMAIN),
    bareDomain: read.oneOf('BARE_DOMAIN', ['not-found', 'legacy'], DEFAULTS.BARE_DOMAIN),
    tenantsFile: read.file('TENANTS_FILE', DEFAULTS.TENANTS_FILE, '/etc/ficus/tenants.json'),
    flagsFile,
    flagsPollMs: read.integer('FLAGS_POLL_MS', DEFAULTS.FLAGS_POLL_MS, 50, 60_000),
    unleash,
    flagGoneAfterMs: read.integer('FLAG_GONE_AFTER_MS', DEFAULTS.FLAG_GONE_AFTER_MS, 0, 31_536_000_000),
    killSwitchFlag: read.optionalString('KILL_SWITCH_FLAG', 1, 'ficus-kill-switch'),
    legacyUrl,
    legacyTable,
    demoLegacyPort: read.port('DEMO_LEGACY_PORT', DEFAULTS.DEMO_LEGACY_PORT),
    legacyUpgrades: Object.freeze(read.list('LEGACY_UPGRADES').map((entry) => entry.toLowerCase())),
    tunnels: Object.freeze({
      idleMs: read.integer('TUNNEL_IDLE_TIMEOUT_MS', DEFAULTS.TUNNEL_IDLE_TIMEOUT_MS, 1, 86_400_000),
      lifetimeMs: read.integer('TUNNEL_MAX_LIFETIME_MS', DEFAULTS.TUNNEL_MAX_LIFETIME_MS, 1, 604_800_000),
      max: read.integer('TUNNEL_MAX', DEFAULTS.TUNNEL_MAX, 0, 1_000_000)
    }),
    legacyTimeoutMs: legacyDefaults.timeoutMs,
    legacyConnections: legacyDefaults.connections,
    legacyKeepAliveMs: legacyDefaults.keepAliveMs,
    preserveHost: read.boolean('PRESERVE_HOST', DEFAULTS.PRESERVE_HOST),
    servedByHeader: servedBy === '' ? undefined : servedBy.toLowerCase(),
    requestIdHeader: read.headerName('REQUEST_ID_HEADER', DEFAULTS.REQUEST_ID_HEADER),
    trustedProxies: read.addressList('TRUSTED_PROXIES'),
    legacyAllowHeaders: Object.freeze(read.list('LEGACY_ALLOW_HEADERS').map((entry) => entry.toLowerCase())),
    sessionCookieHostOnly: read.boolean('SESSION_COOKIE_HOST_ONLY', DEFAULTS.SESSION_COOKIE_HOST_ONLY),
    requestTimeoutMs: read.integer('REQUEST_TIMEOUT_MS', DEFAULTS.REQUEST_TIMEOUT_MS, 1, 3_600_000),
    headersTimeoutMs: read.integer('HEADERS_TIMEOUT_MS', DEFAULTS.HEADERS_TIMEOUT_MS, 1, 3_600_000),
    keepAliveTimeoutMs: read.integer('KEEP_ALIVE_TIMEOUT_MS', DEFAULTS.KEEP_ALIVE_TIMEOUT_MS, 1, 3_600_000),
    clientIdleTimeoutMs: read.integer('CLIENT_IDLE_TIMEOUT_MS', DEFAULTS.CLIENT_IDLE_TIMEOUT_MS, 1, 3_600_000),
    maxHeaderBytes: read.integer('MAX_HEADER_BYTES', DEFAULTS.MAX_HEADER_BYTES, 1_024, 1_048_576),
    bodyLimitBytes: read.integer('BODY_LIMIT_BYTES', DEFAULTS.BODY_LIMIT_BYTES, 1, 1_073_741_824),
    legacyBodyLimitBytes: read.integer('LEGACY_BODY_LIMIT_BYTES', DEFAULTS.LEGACY_BODY_LIMIT_BYTES, 1, 107_374_182_400),
    adminPort: read.port('ADMIN_PORT', DEFAULTS.ADMIN_PORT),
    adminHost: read.string('ADMIN_HOST', DEFAULTS.ADMIN_HOST),
    adminToken: read.optionalString('ADMIN_TOKEN', 16, 'a random string of at least 16 characters'),
    sessions: parseSessionConfig(env, problems),
    access: parseAccessConfig(env, problems),
    tenantDb: parseTenantDbConfig(env, problems),
    safety: parseSafetyConfig(env, problems),
    console: parseConsoleConfig(env, problems),
    accessLog: read.boolean('ACCESS_LOG', DEFAULTS.ACCESS_LOG),
    metricsMaxCohorts: read.integer('METRICS_MAX_COHORTS', DEFAULTS.METRICS_MAX_COHORTS, 0, 1_000),
    drainDelayMs: read.integer('DRAIN_DELAY_MS', DEFAULTS.DRAIN_DELAY_MS, 0, 600_000),
    shutdownTimeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', DEFAULTS.SHUTDOWN_TIMEOUT_MS, 1, 3_600_000),
    workers: read.integer('WORKERS', DEFAULTS.WORKERS, 1, 256),
    workerIndex: env.FICUS_WORKER === undefined ? undefined : read.integer('FICUS_WORKER', 1, 1, 256),
    prewarmLegacyConnections: read.integer('PREWARM_LEGACY_CONNECTIONS', DEFAULTS.PREWARM_LEGACY_CONNECTIONS, 0, 65_536),
    prewarmPath: read.path('PREWARM_PATH', DEFAULTS.PREWARM_PATH),
    prewarmTimeoutMs: read.integer('PREWARM_TIMEOUT_MS', DEFAULTS.PREWARM_TIMEOUT_MS, 1, 600_000),
    prewarmSchools: read.schoolList('PREWARM_SCHOOLS'),
    prewarmConcurrency: read.integer('PREWARM_CONCURRENCY', DEFAULTS.PREWARM_CONCURRENCY, 1, 1_024),
    logLevel: read.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], DEFAULTS.LOG_LEVEL)
  }
  for (const protocol of config.legacyUpgrades) {
    if (!PROTOCOL.test(protocol) || protocol === 'h2c') problems.push(`LEGACY_UPGRADES lists the upgrade protocols tunnelled to legacy, e.g. LEGACY_UPGRADES=websocket (bad entry: ${protocol})`)
  }
  if (config.legacyUpgrades.length > 0 && legacyTable !== undefined) {
    problems.push('LEGACY_UPGRADES goes with LEGACY_URL; with LEGACY_UPSTREAMS each upstream lists its own, e.g. "upgrades": ["websocket"]')
  }
  for (const header of config.legacyAllowHeaders) {
    const problem = allowedHeaderProblem(header, config.requestIdHeader)
    if (problem !== undefined) problems.push(`LEGACY_ALLOW_HEADERS lists headers legacy truly needs among those ficus drops, e.g. LEGACY_ALLOW_HEADERS=X-HTTP-Method-Override (${problem})`)
  }
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    problems.push('HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS, e.g. HEADERS_TIMEOUT_MS=20000 with REQUEST_TIMEOUT_MS=60000')
  }
  if (config.adminPort !== 0 && config.adminPort === config.port && !problems.some((p) => p.startsWith('ADMIN_PORT'))) {
    problems.push('ADMIN_PORT must differ from PORT: the admin listener is never on the public port, e.g. ADMIN_PORT=9090')
  }
  if (config.workers > 1 && config.adminPort !== 0 && config.adminPort + config.workers - 1 > 65_535) {
    problems.push('ADMIN_PORT + WORKERS - 1 must be a port: worker k listens for admin on ADMIN_PORT + k - 1, e.g. ADMIN_PORT=9090 with WORKERS=4')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze(config)
}

// LEGACY_UPSTREAMS holds the table itself (JSON, starting with `{`) or names a file holding it.
function readLegacyTable (env: Env, defaults: { timeoutMs: number, connections: number, keepAliveMs: number }, problems: string[]): LegacyTableSpec | undefined {
  const value = readSet(env, 'LEGACY_UPSTREAMS', problems)?.trim()
  if (value === undefined) return undefined
  let text = value
  if (!value.startsWith('{')) {
    try {
      text = readFileSync(value, 'utf8')
    } catch {
      problems.push(`LEGACY_UPSTREAMS names a file that cannot be read (${value}), e.g. LEGACY_UPSTREAMS=/etc/ficus/legacy-upstreams.json`)
      return undefined
    }
  }
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (error) {
    problems.push(`LEGACY_UPSTREAMS is not valid JSON (${(error as Error).message}), e.g. LEGACY_UPSTREAMS={"upstreams":{"zope":{"url":"http://zope:8080"}},"routes":{},"default":"zope"}`)
    return undefined
  }
  return parseLegacyTable(document, defaults, problems)
}

/** Reads one variable at a time, recording a problem (and returning the default) when it is bad. */
class EnvReader {
  readonly #env: Env
  readonly #problems: string[]

  constructor (env: Env, problems: string[]) {
    this.#env = env
    this.#problems = problems
  }

  #raw (name: string): string | undefined {
    return readSet(this.#env, name, this.#problems)
  }

  string (name: string, fallback: string): string {
    return this.#raw(name) ?? fallback
  }

  optionalString (name: string, minLength: number, example: string): string | undefined {
    const value = this.#raw(name)
    if (value !== undefined && value.length < minLength) {
      this.#problems.push(`${name} must be at least ${minLength} characters long, e.g. ${example}`)
    }
    return value
  }

  integer (name: string, fallback: number, min: number, max: number): number {
    return readWholeNumber(this.#env, name, { fallback, min, max }, this.#problems)
  }

  port (name: string, fallback: number): number {
    return this.integer(name, fallback, 0, 65_535)
  }

  boolean (name: string, fallback: boolean): boolean {
    const value = this.#raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (value === 'true' || value === '1' || value === 'yes') return true
    if (value === 'false' || value === '0' || value === 'no') return false
    this.#problems.push(`${name} must be true or false, e.g. ${name}=${String(fallback)}`)
    return fallback
  }

  oneOf<T extends string> (name: string, allowed: readonly T[], fallback: T): T {
    return readOneOf(this.#env, name, allowed, fallback, this.#problems)
  }

  url (name: string, example: string): string | undefined {
    const value = this.#raw(name)
    if (value === undefined) return undefined
    let url: URL | undefined
    try { url = new URL(value) } catch {}
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') {
      this.#problems.push(`${name} must be an http(s) URL with no query, e.g. ${name}=${example}`)
      return undefined
    }
    return url.origin + url.pathname.replace(/\/$/, '')
  }

  baseDomain (name: string, fallback: string): string {
    const value = this.#raw(name)?.toLowerCase().replace(/\.$/, '')
    if (value === undefined) return fallback
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(value)) {
      this.#problems.push(`${name} must be a domain name, e.g. ${name}=example.org`)
      return fallback
    }
    return value
  }

  headerName (name: string, fallback: string): string {
    const value = this.#raw(name)
    if (value === undefined) return fallback
    if (!/^[A-Za-z0-9-]+$/.test(value)) {
      this.#problems.push(`${name} must be a header name, e.g. ${name}=${fallback}`)
      return fallback
    }
    return value.toLowerCase()
  }

  file (name: string, fallback: string, example: string): string {
    const value = this.#raw(name) ?? fallback
    if (!existsSync(value)) {
      this.#problems.push(`${name} names a file that does not exist (${value}), e.g. ${name}=${example}`)
    }
    return value
  }

  path (name: string, fallback: string): string {
    const value = this.#raw(name)
    if (value === undefined) return fallback
    if (!/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/.test(value)) {
      this.#problems.push(`${name} must be an absolute path with no query, e.g. ${name}=/healthz`)
      return fallback
    }
    return value
  }

  schoolList (name: string): readonly string[] {
    const value = this.#raw(name)
    if (value === undefined) return []
    const entries = value.split(',').map((entry) => entry.trim().toLowerCase()).filter((entry) => entry !== '')
    for (const entry of entries) {
      if (entry !== ALL_ACTIVE && !COHORT_ENTRY_PATTERN.test(entry) && !TENANT_ID_PATTERN.test(entry)) {
        this.#problems.push(`${name} must list school ids, cohort:<name> or ${ALL_ACTIVE}, separated by commas, e.g. ${name}=cohort:pilot,school-a (bad entry: ${entry})`)
      }
    }
    return Object.freeze(entries)
  }

  list (name: string): readonly string[] {
    const value = this.#raw(name)
    return value === undefined ? [] : value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  }

  addressList (name: string): readonly string[] {
    const value = this.#raw(name)
    if (value === undefined) return []
    const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
    for (const entry of entries) {
      const [address = '', bits] = entry.split('/')
      const family = isIP(address)
      const maxBits = family === 6 ? 128 : 32
      if (family === 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= maxBits))) {
        this.#problems.push(`${name} must list IP addresses or CIDR ranges, e.g. ${name}=10.0.0.0/8,127.0.0.1 (bad entry: ${entry})`)
      }
    }
    return Object.freeze(entries)
  }
}
