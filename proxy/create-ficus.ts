// The one place ficus's parts are put together: sessions, the demo legacy (when no LEGACY_URL),
// the tenant registry and its databases, flags, metrics, the safety nets, tunnels, the public
// edge, pre-warm, the migration console and the admin listener with its readiness checks.
// proxy/main.ts, every test kit and the bench call it; nothing listens here, so a test builds
// ficus without a port and main.ts keeps only listening, signals and the drain.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createConsole, type Console } from '../console/index.ts'
import { startDemoLegacyApp, type DemoLegacyApp } from '../demo/legacy-app.ts'
import { routeFlags } from '../flags/flag-keeper.ts'
import { Flags, type FlagReader } from '../flags/flags.ts'
import { Tunnels } from '../legacy-adapter/tunnel.ts'
import type { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import { FicusMetrics } from '../metrics/registry.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import type { MigratedRoute } from '../core/route.ts'
import { Prewarm } from '../safety/lifecycle.ts'
import { SafetyNet } from '../safety/safety-net.ts'
import { createSessions, type SessionComponents } from '../sessions/config.ts'
import { MemorySessionStore } from '../sessions/memory-store.ts'
import { SignatureWatch } from '../sessions/signature-watch.ts'
import { tenantDatabase, type TenantDatabasesStats } from '../tenant-db/index.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import { buildAdmin, Readiness } from './admin.ts'
import type { Config } from './config.ts'
import { decisionsFor } from './decisions.ts'
import { createLogger } from './logger.ts'
import { addLegacyPrewarm, addSchoolPrewarm, prewarmStepOf } from './prewarm-steps.ts'
import { buildProxy, legacyRouterOf } from './server.ts'
import { listenError, openFile } from './startup-error.ts'
import { openTenantRegistry } from './tenant-registry.ts'

/** A registry that may also report its schools' database pools (the production one does). */
export type FicusRegistry = TenantRegistry & { databaseStats?: () => TenantDatabasesStats }

/**
 * What a caller may bring instead of what the configuration describes. Whatever is brought
 * stays the caller's to close; whatever createFicus opens, its `close` closes.
 */
export interface FicusOverrides {
  readonly logger?: Logger
  readonly registry?: FicusRegistry
  readonly flags?: FlagReader
  /** The migrated routes; default: every route of new-routes/. */
  readonly routes?: readonly MigratedRoute[]
  /** A session store of the caller's, or false for none (handlers then have no `request.session`). */
  readonly sessions?: SessionComponents | false
  readonly metrics?: FicusMetrics
  /** Node's process metrics are global to prom-client: only one app of a process may collect them. */
  readonly processMetrics?: boolean
  /** The migration console on the admin listener (default on). */
  readonly console?: boolean
  /** The legacy lane in front of fastify's routing (default on; off to compare the two ways). */
  readonly legacyLane?: boolean
}

export interface Ficus {
  /** The public edge, not listening. */
  readonly app: FastifyInstance
  /** The admin listener (health, metrics, decisions, shadow, breakers, console), not listening. */
  readonly admin: FastifyInstance
  /** The configuration the edge runs with (LEGACY_URL set to the demo legacy when it is embedded). */
  readonly config: Config
  readonly logger: Logger
  readonly registry: FicusRegistry
  readonly flags: FlagReader
  readonly routes: readonly MigratedRoute[]
  readonly sessions: SessionComponents | undefined
  readonly metrics: FicusMetrics
  readonly safety: SafetyNet
  readonly tunnels: Tunnels
  readonly readiness: Readiness
  readonly prewarm: Prewarm
  readonly legacyRouter: LegacyRouter
  /** The embedded demo legacy app, when LEGACY_URL is not set. */
  readonly demoLegacy: DemoLegacyApp | undefined
  readonly console: Console | undefined
  /** Closes the edge (unless closed already), the admin listener, then what createFicus opened, newest first. */
  close (): Promise<void>
  /** Closes the admin listener and what createFicus opened, leaving the edge to the caller's drain. */
  closeParts (): Promise<void>
}

export async function createFicus (config: Config, overrides: FicusOverrides = {}): Promise<Ficus> {
  const logger = overrides.logger ?? createLogger(config.logLevel)
  const routes = overrides.routes ?? migratedRoutes
  const closers: Array<() => Promise<void>> = []

  let sessions = overrides.sessions === false ? undefined : overrides.sessions
  let signatures: SignatureWatch | undefined
  if (overrides.sessions === undefined) {
    const sessionLog = logger.child({ component: 'sessions' })
    // Rate-limited by the watch itself: once per window at most.
    signatures = new SignatureWatch({
      onAlert: (alert) => sessionLog.error(alert, 'most session cookies fail their signature check: SESSION_SECRET probably differs from the legacy\'s SECRET_KEY')
    })
    sessions = createSessions(config.sessions, { info: (m) => sessionLog.info(m), warn: (m) => sessionLog.warn(m) }, signatures)
    if (config.sessions.redisUrl === undefined) logger.info('REDIS_URL not set: sessions live in memory, in this process only')
  }

  let demoLegacy: DemoLegacyApp | undefined
  if (config.legacyUrl === undefined) {
    // The demo legacy shares the in-process session store, as a real one shares Redis.
    const shared = sessions?.store instanceof MemorySessionStore ? sessions.store : undefined
    demoLegacy = await startDemoLegacyApp(config.demoLegacyPort, '127.0.0.1', shared, config.access.csrfSecret).catch((error: unknown) => {
      throw listenError(error, config.demoLegacyPort, '127.0.0.1', { port: 'DEMO_LEGACY_PORT', host: 'HOST' })
    })
    const started = demoLegacy
    closers.push(() => started.close())
    logger.info({ legacy: demoLegacy.url }, 'LEGACY_URL not set: using the embedded demo legacy app')
  }

  let registry = overrides.registry
  if (registry === undefined) {
    // Closing it closes every school's database pool as well.
    const opened = await openTenantRegistry(config, logger)
    closers.push(() => opened.close())
    registry = opened
  }
  // The demo (embedded legacy and databases) creates its schools' databases before ready; with a
  // legacy of its own and no DATABASE_URL (tests, trials), they open on first use as before.
  const embeddedDatabases = config.tenantDb.databaseUrl === undefined && config.legacyUrl === undefined
    ? createEmbeddedDatabases(registry, config.tenantDb.pgliteMax, logger)
    : undefined

  let flags = overrides.flags
  if (flags === undefined) {
    // Route flags the source stops listing keep deciding as they last did (flags/flag-keeper.ts).
    const keeping = { watched: routeFlags(routes, config.killSwitchFlag), goneAfterMs: config.flagGoneAfterMs }
    const unleash = config.unleash
    const opened = unleash === undefined
      ? await openFile('FLAGS_FILE', config.flagsFile, 'flags file', () => Flags.fromFile(config.flagsFile, logger, config.flagsPollMs, keeping))
      : await openFile('FLAGS_FILE', config.flagsFile, 'bootstrap flags file', () => Flags.fromServer(unleash, logger, keeping))
    closers.push(() => opened.close())
    if (config.unleash === undefined) logger.info({ flags: config.flagsFile }, 'UNLEASH_URL not set: flags come from the flags file')
    flags = opened
  }
  const fullFlags = flags instanceof Flags ? flags : undefined

  const readiness = new Readiness()
  // Forward to the demo app where it actually listens: DEMO_LEGACY_PORT=0 lets the system pick.
  const proxyConfig: Config = demoLegacy === undefined ? config : Object.freeze({ ...config, legacyUrl: demoLegacy.url })
  const legacyRouter = legacyRouterOf(proxyConfig)
  warnOfStrayShards(registry, legacyRouter, logger)

  const metrics = overrides.metrics ?? new FicusMetrics({ routes: routes.map((route) => route.name), upstreams: legacyRouter.upstreams.map((upstream) => upstream.name), maxCohorts: config.metricsMaxCohorts, processMetrics: overrides.processMetrics })
  const safety = new SafetyNet({ config: config.safety, events: metrics, logger })
  const tunnels = new Tunnels(config.tunnels)
  addGauges(metrics, { flags: fullFlags, safety, sessions, signatures, registry, readiness, tunnels })
  const app = await buildProxy({ config: proxyConfig, registry, flags, routes, logger, sessions, safety, metrics, lifecycle: readiness, tunnels, legacyRouter, legacyLane: overrides.legacyLane !== false })

  const prewarm = new Prewarm()
  addLegacyPrewarm(prewarm, app, proxyConfig, legacyRouter)
  addSchoolPrewarm(prewarm, config, registry, logger)

  let migrationConsole: Console | undefined
  if (overrides.console !== false && fullFlags !== undefined) {
    migrationConsole = createConsole({
      config: config.console, adminToken: config.adminToken, routes, registry, flags: fullFlags, killSwitchFlag: config.killSwitchFlag,
      guards: safety.guards, metrics, flagsFile: config.flagsFile, unleashEnvironment: config.unleash?.environment, controlDatabaseUrl: config.tenantDb.databaseUrl, workerIndex: config.workerIndex, logger
    })
    const opened = migrationConsole
    closers.push(() => opened.close())
  }
  const checkedRegistry = registry
  const admin = await buildAdmin({
    token: config.adminToken,
    logger,
    checks: [
      ...(fullFlags === undefined ? [] : [{ name: 'flags', check: () => ({ ready: fullFlags.isReady(), detail: fullFlags.status() }) }]),
      { name: 'tenants', check: () => ({ ready: checkedRegistry.size > 0, detail: { source: checkedRegistry.source, count: checkedRegistry.size } }) },
      { name: 'prewarm', check: () => ({ ready: prewarm.done, detail: prewarm.results }) },
      // A line per legacy upstream: where it is and how its pre-warm went (best effort, as above).
      ...(config.legacyTable !== undefined
        ? legacyRouter.upstreams.map((upstream) => ({ name: `legacy ${upstream.name}`, check: () => ({ ready: prewarm.done, detail: { url: upstream.url, prewarm: prewarm.results[prewarmStepOf(config, upstream.name)] ?? 'not run' } }) }))
        : []),
      ...(embeddedDatabases === undefined ? [] : [{ name: 'embedded school databases', check: () => embeddedDatabases.status() }])
    ],
    ...(fullFlags === undefined ? {} : { decisions: (tenantId: string) => decisionsFor(tenantId, { registry: checkedRegistry, flags: fullFlags, routes, killSwitchFlag: config.killSwitchFlag, legacyRouter }) }),
    metrics,
    safety,
    console: migrationConsole?.plugin
  }, readiness)

  let appClosed: Promise<void> | undefined
  const closeApp = (): Promise<void> => (appClosed ??= app.close())
  app.addHook('onClose', async () => { appClosed ??= Promise.resolve() })
  const closeParts = async (): Promise<void> => {
    await admin.close()
    for (const close of closers.reverse()) await close()
    closers.length = 0
  }
  return {
    app,
    admin,
    config: proxyConfig,
    logger,
    registry,
    flags,
    routes,
    sessions,
    metrics,
    safety,
    tunnels,
    readiness,
    prewarm,
    legacyRouter,
    demoLegacy,
    console: migrationConsole,
    async close () {
      await closeApp()
      await closeParts()
    },
    closeParts
  }
}

// A shard the table lacks is a mistake in one of two places; its schools get 502 until fixed.
function warnOfStrayShards (registry: TenantRegistry, router: LegacyRouter, logger: FastifyBaseLogger): void {
  const strayShards = [...registry.all()].filter((tenant) => tenant.legacy !== undefined && !router.hasShard(tenant.legacy))
  if (strayShards.length === 0) return
  logger.warn({ schools: strayShards.slice(0, 20).map((tenant) => `${tenant.id} -> ${String(tenant.legacy)}`), count: strayShards.length, shards: router.shardNames }, 'schools pinned to a legacy shard LEGACY_UPSTREAMS does not declare: their legacy requests get 502 FICUS_ERR_LEGACY_SHARD_UNKNOWN')
}

function addGauges (metrics: FicusMetrics, parts: { flags: Flags | undefined, safety: SafetyNet, sessions: SessionComponents | undefined, signatures: SignatureWatch | undefined, registry: FicusRegistry, readiness: Readiness, tunnels: Tunnels }): void {
  const { flags, safety, sessions, signatures, registry, readiness, tunnels } = parts
  if (flags !== undefined) {
    metrics.addFlags(() => flags.status())
    metrics.addFlagTrust(() => {
      const status = flags.status()
      return { missingNow: status.missingFlags.length, authRejected: status.authRejected !== undefined, ...flags.counts() }
    })
  }
  metrics.addBreakers(() => safety.guards.map((guard) => ({ route: guard.name, open: guard.breaker.openCount, halfOpen: guard.breaker.halfOpenCount })))
  if (signatures !== undefined) {
    metrics.addLabelledCounter('ficus_session_signature_checks_total', 'Signature checks of session cookies, by outcome (valid, invalid)', () => [
      { labels: { outcome: 'valid' }, value: signatures.valid },
      { labels: { outcome: 'invalid' }, value: signatures.invalid }
    ])
    metrics.addLabelledCounter('ficus_session_signature_alerts_total', 'Windows in which most session cookies failed their signature check', () => [{ labels: {}, value: signatures.alerts }])
  }
  if (sessions !== undefined) metrics.addGauge('ficus_session_bindings_cached', 'Session id -> school bindings remembered by this process', () => sessions.bindings.size)
  const memoryStore = sessions?.store instanceof MemorySessionStore ? sessions.store : undefined
  if (memoryStore !== undefined) metrics.addGauge('ficus_session_store_records', 'Sessions held by the in-process store', () => memoryStore.size)
  const databaseStats = registry.databaseStats
  if (databaseStats !== undefined) metrics.addTenantPools(() => databaseStats.call(registry))
  metrics.addGauge('ficus_shadow_in_flight', 'Shadow comparisons running now', () => safety.shadowInFlight)
  metrics.addGauge('ficus_draining', '1 from SIGTERM until exit', () => (readiness.draining ? 1 : 0))
  metrics.addGauge('ficus_tunnels_open', 'Upgrade tunnels (WebSocket) open to legacy now', () => tunnels.size)
}

/**
 * Every school's embedded database, created one after the other before /readyz says ready:
 * starting a PGlite database takes seconds, which the first visitor should not wait for (and
 * one at a time keeps the peak memory of the demo low). A school that fails is reported and
 * does not hold readiness: its requests get the database error, the others are served.
 */
function createEmbeddedDatabases (registry: { all (): Iterable<Parameters<typeof tenantDatabase>[0]> }, max: number, logger: Logger): { status (): { ready: boolean, detail: Record<string, string> } } {
  const detail: Record<string, string> = {}
  let done = false
  const started = performance.now()
  void (async () => {
    // At most as many as may be open at once (TENANT_PGLITE_MAX): the demo has three.
    for (const tenant of [...registry.all()].slice(0, max)) {
      detail[tenant.id] = 'creating'
      try {
        await tenantDatabase(tenant).query('SELECT 1')
        detail[tenant.id] = 'ok'
      } catch (error) {
        detail[tenant.id] = `failed: ${(error as Error).message}`
        logger.warn({ tenant: tenant.id, err: (error as Error).message }, 'embedded school database could not be created')
      }
    }
    done = true
    logger.info({ schools: detail, ms: Math.round(performance.now() - started) }, 'embedded school databases created')
  })()
  return { status: () => ({ ready: done, detail }) }
}
