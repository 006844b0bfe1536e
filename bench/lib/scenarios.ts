// Every measured case in one table: which contender, which path, what a correct answer looks like.
// A new ficus scenario is one more entry here (and, for a migrated route, one more route in
// bench/ficus-entry.ts); `pending` keeps a planned scenario visible in the output until it lands.
import { BASE_DOMAIN, BENCH_PATHS, LARGE_BYTES, SCHOOLS, SMALL_BYTES } from './fixtures.ts'

export type ContenderKind = 'upstream' | 'nginx-proxy' | 'node'
export type Payload = 'small' | 'large'

export interface Contender {
  readonly id: string
  readonly label: string
  readonly kind: ContenderKind
  /** Node entry point, relative to bench/. */
  readonly entry?: string
  readonly args?: readonly string[]
  /** Whether it is ficus (gets the ficus environment) or a baseline. */
  readonly ficus: boolean
  /** Cores it runs on (taskset list); the proxy core by default. */
  readonly cpus?: string
  /** Extra environment (ficus contenders). */
  readonly env?: Readonly<Record<string, string>>
  /** Node flags before the entry point. */
  readonly nodeFlags?: readonly string[]
}

export interface Scenario {
  readonly id: string
  readonly label: string
  readonly contender: Contender
  readonly payload: Payload
  readonly path: string
  readonly expect: { readonly bytes?: number, readonly servedBy?: 'legacy' | 'new' }
  /** Schools the Host rotates over (the visited ones by default). */
  readonly schools?: number
  /** Each request carries the session cookie of its own school (sessions written to Redis first). */
  readonly sessionCookie?: boolean
  /** What it needs besides the upstream: Redis for sessions, PostgreSQL school databases. */
  readonly needs?: 'redis' | 'postgres'
  /** Several processes (WORKERS): CPU and RSS are summed over the process and its children. */
  readonly processTree?: boolean
  /** WORKERS of proxy/main.ts: with more than one, the run counts only if it forked that many. */
  readonly workers?: number
  /** How the school databases are reached (scenario d): straight to PostgreSQL by default. */
  readonly databasePath?: 'direct' | 'pgbouncer'
  /** Extra environment of this scenario's ficus. */
  readonly env?: Readonly<Record<string, string>>
  /** LEGACY_UPSTREAMS with this many prefixes (none matching the path) instead of LEGACY_URL. */
  readonly legacyTableEntries?: number
  /** Set while the scenario cannot run yet: says what it waits for. */
  readonly pending?: string
}

const DATABASE_POOLS_MAX_FOR_LABEL = 50

export const PROBE_HOST = `school-0.${BASE_DOMAIN}`

const DIRECT: Contender = { id: 'direct', label: 'direct to upstream (ceiling)', kind: 'upstream', ficus: false }
const NGINX: Contender = { id: 'nginx-proxy', label: 'nginx reverse proxy', kind: 'nginx-proxy', ficus: false }
const HTTP_PROXY: Contender = { id: 'http-proxy', label: '@fastify/http-proxy', kind: 'node', entry: 'baselines/http-proxy.ts', ficus: false }
const REPLY_FROM: Contender = { id: 'reply-from', label: 'fastify + reply-from + lookup', kind: 'node', entry: 'baselines/reply-from.ts', ficus: false }
const UNDICI: Contender = { id: 'undici-pool', label: 'hand-written undici Pool', kind: 'node', entry: 'baselines/undici-pool.ts', ficus: false }
// The forwarding shape proposed for ficus (bench/README.md), not a baseline to beat.
const PROPOSAL: Contender = { id: 'fastify-hijack-stream', label: 'fastify + hijacked undici stream (proposal)', kind: 'node', entry: 'baselines/fastify-undici-stream.ts', ficus: false }
const FICUS: Contender = { id: 'ficus', label: 'ficus', kind: 'node', entry: 'ficus-entry.ts', args: ['--decision=flags'], ficus: true }
// The same ficus with V8's young generation capped: what NODE_OPTIONS could do for RSS (bench/README.md).
export const SEMI_SPACE_FLAG = '--max-semi-space-size=8'
const FICUS_SMALL_YOUNG: Contender = { id: 'ficus-semi8', label: `ficus, ${SEMI_SPACE_FLAG}`, kind: 'node', entry: 'ficus-entry.ts', args: ['--decision=flags'], ficus: true, nodeFlags: [SEMI_SPACE_FLAG] }
// proxy/main.ts itself, as `npm start` runs it, with WORKERS=2 on both cores (the machine has no
// third): the primary forks two full ficus workers on the shared port.
const FICUS_WORKERS: Contender = { id: 'ficus-workers', label: 'ficus (proxy/main.ts) WORKERS=2', kind: 'node', entry: '../proxy/main.ts', ficus: true, cpus: '0,1', env: { WORKERS: '2', ADMIN_PORT: '0' } }
// The same with one worker (ficus in the started process itself), on the same two cores: the
// other end of the scaling figure.
const FICUS_ONE_WORKER: Contender = { id: 'ficus-workers-1', label: 'ficus (proxy/main.ts) WORKERS=1', kind: 'node', entry: '../proxy/main.ts', ficus: true, cpus: '0,1', env: { WORKERS: '1', ADMIN_PORT: '0' } }
// Baselines given the same young-generation cap, for the targets measured with it.
const HTTP_PROXY_SMALL_YOUNG: Contender = { ...HTTP_PROXY, id: 'http-proxy-semi8', label: `${HTTP_PROXY.label}, ${SEMI_SPACE_FLAG}`, nodeFlags: [SEMI_SPACE_FLAG] }
const UNDICI_SMALL_YOUNG: Contender = { ...UNDICI, id: 'undici-pool-semi8', label: `${UNDICI.label}, ${SEMI_SPACE_FLAG}`, nodeFlags: [SEMI_SPACE_FLAG] }
const FICUS_NO_LANE: Contender = { id: 'ficus-nolane', label: 'ficus without the legacy lane', kind: 'node', entry: 'ficus-entry.ts', args: ['--lane=off'], ficus: true }
const FICUS_NO_DECISION: Contender = { id: 'ficus-skip', label: 'ficus, decision skipped', kind: 'node', entry: 'ficus-entry.ts', args: ['--decision=skip'], ficus: true }

export const BASELINES: readonly Contender[] = [DIRECT, NGINX, HTTP_PROXY, REPLY_FROM, UNDICI, PROPOSAL]
// With the young generation capped: what the targets with that flag compare against.
const YOUNG_BASELINES: Readonly<Record<Payload, readonly Contender[]>> = { small: [HTTP_PROXY_SMALL_YOUNG, UNDICI_SMALL_YOUNG], large: [UNDICI_SMALL_YOUNG] }

function baselines (payload: Payload): Scenario[] {
  const path = payload === 'small' ? BENCH_PATHS.small : BENCH_PATHS.large
  const bytes = payload === 'small' ? SMALL_BYTES : LARGE_BYTES
  return [...BASELINES, ...YOUNG_BASELINES[payload]].map((contender) => ({
    id: `${contender.id}/${payload}`,
    label: `${contender.label}, ${payload === 'small' ? '1 KiB' : '100 KiB'}`,
    contender,
    payload,
    path,
    expect: { bytes }
  }))
}

export const SCENARIOS: readonly Scenario[] = [
  ...baselines('small'),
  { id: 'ficus-a/small', label: 'ficus (a) legacy-bound, 1 KiB', contender: FICUS, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' } },
  // The same legacy-bound page through a 20-prefix routing table: the path is checked against
  // every prefix before it falls to the default upstream (the worst case of the lookup).
  { id: 'ficus-a-table20/small', label: 'ficus (a) legacy-bound, 20-entry LEGACY_UPSTREAMS, 1 KiB', contender: FICUS, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' }, legacyTableEntries: 20 },
  // The same through fastify's routing and the stages, the legacy lane off: what the lane saves.
  { id: 'ficus-a-nolane/small', label: 'ficus (a) legacy-bound without the legacy lane, 1 KiB', contender: FICUS_NO_LANE, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' } },
  { id: 'ficus-a-skip/small', label: 'ficus (a) decision skipped, 1 KiB', contender: FICUS_NO_DECISION, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' } },
  { id: 'ficus-a-semi8/small', label: `ficus (a) legacy-bound, 1 KiB, ${SEMI_SPACE_FLAG}`, contender: FICUS_SMALL_YOUNG, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' } },
  { id: 'ficus-b/small', label: 'ficus (b) migrated, JSON from memory', contender: FICUS, payload: 'small', path: BENCH_PATHS.migrated, expect: { servedBy: 'new' } },
  { id: 'ficus-a-cookie/small', label: 'ficus (a) legacy-bound, own school\'s session cookie, 1 KiB', contender: FICUS, payload: 'small', path: BENCH_PATHS.small, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' }, sessionCookie: true, needs: 'redis' },
  { id: 'ficus-c/small', label: 'ficus (c) migrated GET /me, Redis session read', contender: FICUS, payload: 'small', path: BENCH_PATHS.session, expect: { servedBy: 'new' }, sessionCookie: true, needs: 'redis' },
  { id: 'ficus-d/small', label: `ficus (d) migrated GET /attendance, a teacher's session and school database read, ${SCHOOLS} schools, TENANT_POOLS_MAX=50`, contender: FICUS, payload: 'small', path: BENCH_PATHS.database, expect: { servedBy: 'new' }, schools: SCHOOLS, sessionCookie: true, needs: 'postgres' },
  { id: 'ficus-d-hot/small', label: `ficus (d) the same, Host over ${DATABASE_POOLS_MAX_FOR_LABEL} schools only (every pool stays open)`, contender: FICUS, payload: 'small', path: BENCH_PATHS.database, expect: { servedBy: 'new' }, schools: DATABASE_POOLS_MAX_FOR_LABEL, sessionCookie: true, needs: 'postgres' },
  // Through a real PgBouncer in transaction mode, a pool per registered school left open.
  { id: 'ficus-d-bouncer/small', label: `ficus (d) through PgBouncer (transaction mode), ${SCHOOLS} schools, TENANT_POOLS_MAX=${SCHOOLS} (no eviction)`, contender: FICUS, payload: 'small', path: BENCH_PATHS.database, expect: { servedBy: 'new' }, schools: SCHOOLS, sessionCookie: true, needs: 'postgres', databasePath: 'pgbouncer', env: { TENANT_POOLS_MAX: String(SCHOOLS) } },
  // (d-hot) with the register read as before one-round-trip reads: BEGIN + SET LOCAL, the
  // SELECT, COMMIT (db.transaction), on the bench's own copy of the route.
  { id: 'ficus-d-hot-3rt/small', label: `ficus (d-hot) the same read in three round trips (transaction), ${DATABASE_POOLS_MAX_FOR_LABEL} schools`, contender: FICUS, payload: 'small', path: BENCH_PATHS.databaseThreeRoundTrips, expect: { servedBy: 'new' }, schools: DATABASE_POOLS_MAX_FOR_LABEL, sessionCookie: true, needs: 'postgres' },
  { id: 'ficus-e/small', label: 'ficus (e) WORKERS=2 (proxy/main.ts), legacy-bound page, 1 KiB', contender: FICUS_WORKERS, payload: 'small', path: BENCH_PATHS.legacyPage, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' }, processTree: true, workers: 2 },
  { id: 'ficus-e1/small', label: 'ficus (e) WORKERS=1 (proxy/main.ts), legacy-bound page, 1 KiB', contender: FICUS_ONE_WORKER, payload: 'small', path: BENCH_PATHS.legacyPage, expect: { bytes: SMALL_BYTES, servedBy: 'legacy' }, processTree: true, workers: 1 },
  ...baselines('large'),
  { id: 'ficus-a/large', label: 'ficus (a) legacy-bound, 100 KiB', contender: FICUS, payload: 'large', path: BENCH_PATHS.large, expect: { bytes: LARGE_BYTES, servedBy: 'legacy' } },
  { id: 'ficus-a-semi8/large', label: `ficus (a) legacy-bound, 100 KiB, ${SEMI_SPACE_FLAG}`, contender: FICUS_SMALL_YOUNG, payload: 'large', path: BENCH_PATHS.large, expect: { bytes: LARGE_BYTES, servedBy: 'legacy' } }
]

/** The targets, each a ratio between two scenarios of the same run. */
export interface Target {
  readonly label: string
  readonly scenario: string
  readonly baseline: string
  readonly metric: 'rps' | 'p99' | 'cpu'
  /** rps: ficus/baseline must be >= bound; p99 and cpu (per request): ficus/baseline must be <= bound. */
  readonly bound: number
}

// The legacy-path targets (issue 13), once with Node's default flags and once with the young
// generation capped on both sides.
function legacyPathTargets (suffix: '' | '-semi8', flags: string): Target[] {
  return [
    { label: `legacy path CPU per request <= 1.1x hand-written undici${flags}`, scenario: `ficus-a${suffix}/small`, baseline: `undici-pool${suffix}/small`, metric: 'cpu', bound: 1.1 },
    { label: `legacy path >= 1.4x @fastify/http-proxy${flags}`, scenario: `ficus-a${suffix}/small`, baseline: `http-proxy${suffix}/small`, metric: 'rps', bound: 1.4 },
    { label: `legacy path p99 <= 1.2x hand-written undici${flags}`, scenario: `ficus-a${suffix}/small`, baseline: `undici-pool${suffix}/small`, metric: 'p99', bound: 1.2 },
    { label: `100 KiB >= 0.9x hand-written undici${flags}`, scenario: `ficus-a${suffix}/large`, baseline: `undici-pool${suffix}/large`, metric: 'rps', bound: 0.9 }
  ]
}

export const TARGETS: readonly Target[] = [
  ...legacyPathTargets('', ''),
  ...legacyPathTargets('-semi8', `, both with ${SEMI_SPACE_FLAG}`),
  // reply-from stays the forwarder only if it comes within 10% of the dispatch forwarder; ficus
  // (a) does all of ficus's work besides, so beating the bare reply-from baseline by 10% settles it.
  { label: 'dispatch forwarder against reply-from: ficus (a) >= 1.1x fastify + reply-from + lookup', scenario: 'ficus-a/small', baseline: 'reply-from/small', metric: 'rps', bound: 1.1 },
  // Flags cost < 2%: ficus with the decision must keep > 98% of ficus without it.
  { label: 'flags (1,500 schools x 50 flags) cost < 2%: req/s against the decision skipped', scenario: 'ficus-a/small', baseline: 'ficus-a-skip/small', metric: 'rps', bound: 0.98 },
  // The legacy lane (request-path/legacy-lane.ts) must earn its place against fastify's routing and the stages.
  { label: 'the legacy lane: ficus (a) >= 1.05x ficus (a) without it', scenario: 'ficus-a/small', baseline: 'ficus-a-nolane/small', metric: 'rps', bound: 1.05 },
  { label: 'legacy path with a 20-entry routing table within 3% of one upstream', scenario: 'ficus-a-table20/small', baseline: 'ficus-a/small', metric: 'rps', bound: 0.97 },
  { label: 'session path (c) >= 0.7x scenario (b)', scenario: 'ficus-c/small', baseline: 'ficus-b/small', metric: 'rps', bound: 0.7 }
]

/** ficus's own work per legacy-bound request (everything but the forwarding), from a profile, at most. */
export const OWN_WORK_US_BOUND = 3
/** CPU per request with two workers over one, at most: below it, req/s grows with the cores. */
export const WORKERS_CPU_GROWTH_BOUND = 1.1

/** Redis round trips per request of the session path, at most. */
export const SESSION_ROUND_TRIPS_BOUND = 1
/** Scenario (d)'s pool settings: the issue's cap, and one connection per pool (see bench/README.md). */
export const DATABASE_POOLS_MAX = DATABASE_POOLS_MAX_FOR_LABEL
export const DATABASE_POOL_SIZE = 1
/**
 * PgBouncer's budget towards PostgreSQL in (d-bouncer): server connections per school database,
 * and at most this many over all of them (this server has max_connections=100, shared).
 */
export const PGBOUNCER_POOL_SIZE = 1
export const PGBOUNCER_MAX_SERVER_CONNECTIONS = 40

export const RSS_TARGET_BYTES = 150 * 1_024 * 1_024
