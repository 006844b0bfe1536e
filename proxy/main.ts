// Starts ficus: reads the configuration, brings up what it names (or the embedded demo parts
// when it names nothing), pre-warms, listens, and drains then shuts down on SIGTERM/SIGINT.
// With WORKERS=N the first process only forks N workers on the same port and relays signals.
// First: on an older Node it stops here, with one line saying what to install.
import './node-version.ts'
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { FicusMetrics } from '../metrics/registry.ts'
import { CANCEL_SETTLE_MS, CLOSE_BOUND_MS, closeGracefully, legacyPrewarmOutcome, Prewarm, sleep, within } from '../safety/lifecycle.ts'
import { openPrewarmSchools, selectPrewarmSchools } from '../safety/prewarm-schools.ts'
import { SafetyNet } from '../safety/safety-net.ts'
import { tenantDatabase } from '../tenant-db/index.ts'
import { startDemoLegacyApp, type DemoLegacyApp } from '../demo/legacy-app.ts'
import { Flags } from '../flags/flags.ts'
import { routeFlags } from '../flags/flag-keeper.ts'
import { listenError, listenOrExplain, openFile, StartupError } from './startup-error.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import { buildAdmin, Readiness } from './admin.ts'
import { ConfigError, parseConfig, type Config } from './config.ts'
import { createLogger } from './logger.ts'
import { openTenantRegistry } from './tenant-registry.ts'
import { decisionsFor, missingRouteFlags } from './decisions.ts'
import { createSessions } from '../sessions/config.ts'
import { MemorySessionStore } from '../sessions/memory-store.ts'
import { SignatureWatch } from '../sessions/signature-watch.ts'
import { buildProxy, legacyRouterOf } from './server.ts'
import { Tunnels } from '../legacy-adapter/tunnel.ts'
import { createConsole } from '../console/index.ts'

async function main (): Promise<void> {
  let config: Config
  try {
    config = parseConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`ficus: ${error.message}\n`)
    process.exit(1)
  }
  const logger = createLogger(config.logLevel)
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config.workers, logger)
  // SIGHUP's default action kills the process: it is taken over at once, and re-reads the files
  // once they are open.
  let onHangUp = (): void => logger.info('SIGHUP while starting: ignored')
  process.on('SIGHUP', () => onHangUp())
  const closers: Array<() => Promise<void>> = []

  const sessionLog = logger.child({ component: 'sessions' })
  // Rate-limited by the watch itself: once per window at most.
  const signatures = new SignatureWatch({
    onAlert: (alert) => sessionLog.error(alert, 'most session cookies fail their signature check: SESSION_SECRET probably differs from the legacy\'s SECRET_KEY')
  })
  const sessions = createSessions(config.sessions, { info: (m) => sessionLog.info(m), warn: (m) => sessionLog.warn(m) }, signatures)
  if (config.sessions.redisUrl === undefined) logger.info('REDIS_URL not set: sessions live in memory, in this process only')

  let legacy: DemoLegacyApp | undefined
  if (config.legacyUrl === undefined) {
    // The demo legacy shares the in-process session store, as a real one shares Redis.
    const shared = sessions.store instanceof MemorySessionStore ? sessions.store : undefined
    legacy = await startDemoLegacyApp(config.demoLegacyPort, '127.0.0.1', shared, config.access.csrfSecret).catch((error: unknown) => {
      throw listenError(error, config.demoLegacyPort, '127.0.0.1', { port: 'DEMO_LEGACY_PORT', host: 'HOST' })
    })
    closers.push(() => legacy?.close() ?? Promise.resolve())
    logger.info({ legacy: legacy.url }, 'LEGACY_URL not set: using the embedded demo legacy app')
  }

  // Closing it closes every school's database pool as well.
  const registry = await openTenantRegistry(config, logger)
  closers.push(() => registry.close())
  // The demo (embedded legacy and databases) creates its schools' databases before ready; with a
  // legacy of its own and no DATABASE_URL (tests, trials), they open on first use as before.
  const embeddedDatabases = config.tenantDb.databaseUrl === undefined && config.legacyUrl === undefined
    ? createEmbeddedDatabases(registry, config.tenantDb.pgliteMax, logger)
    : undefined

  // Route flags the source stops listing keep deciding as they last did (flags/flag-keeper.ts).
  const keeping = { watched: routeFlags(migratedRoutes, config.killSwitchFlag), goneAfterMs: config.flagGoneAfterMs }
  const unleash = config.unleash
  const flags = unleash === undefined
    ? await openFile('FLAGS_FILE', config.flagsFile, 'flags file', () => Flags.fromFile(config.flagsFile, logger, config.flagsPollMs, keeping))
    : await openFile('FLAGS_FILE', config.flagsFile, 'bootstrap flags file', () => Flags.fromServer(unleash, logger, keeping))
  closers.push(() => flags.close())
  if (config.unleash === undefined) logger.info({ flags: config.flagsFile }, 'UNLEASH_URL not set: flags come from the flags file')

  const readiness = new Readiness()
  // Forward to the demo app where it actually listens: DEMO_LEGACY_PORT=0 lets the system pick.
  const proxyConfig: Config = legacy === undefined ? config : Object.freeze({ ...config, legacyUrl: legacy.url })
  const legacyRouter = legacyRouterOf(proxyConfig)
  // A shard the table lacks is a mistake in one of two places; its schools get 502 until fixed.
  const strayShards = [...registry.all()].filter((tenant) => tenant.legacy !== undefined && !legacyRouter.hasShard(tenant.legacy))
  if (strayShards.length > 0) {
    logger.warn({ schools: strayShards.slice(0, 20).map((tenant) => `${tenant.id} -> ${String(tenant.legacy)}`), count: strayShards.length, shards: legacyRouter.shardNames }, 'schools pinned to a legacy shard LEGACY_UPSTREAMS does not declare: their legacy requests get 502 FICUS_ERR_LEGACY_SHARD_UNKNOWN')
  }
  const metrics = new FicusMetrics({ routes: migratedRoutes.map((route) => route.name), upstreams: legacyRouter.upstreams.map((upstream) => upstream.name), maxCohorts: config.metricsMaxCohorts })
  const safety = new SafetyNet({ config: config.safety, flags, killSwitchFlag: config.killSwitchFlag, events: metrics, logger })
  metrics.addFlags(() => flags.status())
  metrics.addFlagTrust(() => {
    const status = flags.status()
    return { missingNow: status.missingFlags.length, authRejected: status.authRejected !== undefined, ...flags.counts() }
  })
  metrics.addBreakers(() => safety.guards.map((guard) => ({ route: guard.name, open: guard.breaker.openCount, halfOpen: guard.breaker.halfOpenCount })))
  metrics.addLabelledCounter('ficus_session_signature_checks_total', 'Signature checks of session cookies, by outcome (valid, invalid)', () => [
    { labels: { outcome: 'valid' }, value: signatures.valid },
    { labels: { outcome: 'invalid' }, value: signatures.invalid }
  ])
  metrics.addLabelledCounter('ficus_session_signature_alerts_total', 'Windows in which most session cookies failed their signature check', () => [{ labels: {}, value: signatures.alerts }])
  metrics.addGauge('ficus_session_bindings_cached', 'Session id -> school bindings remembered by this process', () => sessions.bindings.size)
  const memoryStore = sessions.store instanceof MemorySessionStore ? sessions.store : undefined
  if (memoryStore !== undefined) metrics.addGauge('ficus_session_store_records', 'Sessions held by the in-process store', () => memoryStore.size)
  metrics.addTenantPools(() => registry.databaseStats())
  metrics.addGauge('ficus_shadow_in_flight', 'Shadow comparisons running now', () => safety.shadowInFlight)
  metrics.addGauge('ficus_draining', '1 from SIGTERM until exit', () => (readiness.draining ? 1 : 0))
  const tunnels = new Tunnels(config.tunnels)
  metrics.addGauge('ficus_tunnels_open', 'Upgrade tunnels (WebSocket) open to legacy now', () => tunnels.size)
  const app = await buildProxy({ config: proxyConfig, registry, flags, routes: migratedRoutes, logger, sessions, safety, metrics, lifecycle: readiness, tunnels })

  const prewarm = new Prewarm()
  // One step per legacy upstream ('legacy' alone with LEGACY_URL), each through its own pool.
  const severalUpstreams = config.legacyTable !== undefined
  const prewarmStepOf = (name: string): string => severalUpstreams ? `legacy ${name}` : 'legacy'
  if (config.prewarmLegacyConnections > 0 && proxyConfig.legacyUrl !== undefined) {
    for (const upstream of legacyRouter.upstreams) {
      // Sent at once through the legacy adapter's own pool, so each opens a connection there.
      prewarm.add({
        name: prewarmStepOf(upstream.name),
        run: async () => legacyPrewarmOutcome(await app.legacyPrewarm(upstream, config.prewarmPath, config.prewarmLegacyConnections), config.prewarmPath)
      })
    }
  }
  if (config.prewarmSchools.length > 0) {
    prewarm.add({
      name: 'school databases',
      run: async () => {
        const { schools, unknown } = selectPrewarmSchools(config.prewarmSchools, registry.all())
        const { tenantDb } = config
        const outcome = await openPrewarmSchools(schools, async (tenant) => { await tenantDatabase(tenant).query('SELECT 1') }, {
          concurrency: config.prewarmConcurrency,
          timeoutMs: config.prewarmTimeoutMs,
          max: tenantDb.databaseUrl === undefined ? tenantDb.pgliteMax : tenantDb.poolsMax
        })
        logger.info({ selected: schools.length, opened: outcome.opened, failed: outcome.failed.length, skipped: outcome.skipped }, 'school databases pre-warmed')
        const problems = [
          ...(unknown.length > 0 ? [`PREWARM_SCHOOLS names ${unknown.join(', ')}, not in the registry`] : []),
          ...(outcome.failed.length > 0 ? [`${outcome.failed.length} of ${schools.length} failed (first: ${outcome.failed[0]?.id}: ${outcome.failed[0]?.error})`] : []),
          ...(outcome.skipped > 0 ? [`${outcome.skipped} of ${schools.length} left closed (pool cap or PREWARM_TIMEOUT_MS)`] : [])
        ]
        if (problems.length > 0) throw new Error(`${outcome.opened} opened; ${problems.join('; ')}`)
      }
    })
  }
  const migrationConsole = createConsole({
    config: config.console, adminToken: config.adminToken, routes: migratedRoutes, registry, flags, killSwitchFlag: config.killSwitchFlag,
    guards: safety.guards, metrics, flagsFile: config.flagsFile, unleashEnvironment: config.unleash?.environment, controlDatabaseUrl: config.tenantDb.databaseUrl, workerIndex: config.workerIndex, logger
  })
  closers.push(() => migrationConsole.close())
  const admin = await buildAdmin({
    token: config.adminToken,
    logger,
    checks: [
      { name: 'flags', check: () => ({ ready: flags.isReady(), detail: flags.status() }) },
      { name: 'tenants', check: () => ({ ready: registry.size > 0, detail: { source: registry.source, count: registry.size } }) },
      { name: 'prewarm', check: () => ({ ready: prewarm.done, detail: prewarm.results }) },
      // A line per legacy upstream: where it is and how its pre-warm went (best effort, as above).
      ...(severalUpstreams
        ? legacyRouter.upstreams.map((upstream) => ({ name: `legacy ${upstream.name}`, check: () => ({ ready: prewarm.done, detail: { url: upstream.url, prewarm: prewarm.results[prewarmStepOf(upstream.name)] ?? 'not run' } }) }))
        : []),
      ...(embeddedDatabases === undefined ? [] : [{ name: 'embedded school databases', check: () => embeddedDatabases.status() }])
    ],
    decisions: (tenantId) => decisionsFor(tenantId, { registry, flags, routes: migratedRoutes, killSwitchFlag: config.killSwitchFlag, legacyRouter }),
    metrics,
    safety,
    console: migrationConsole.plugin
  }, readiness)

  // Workers share the public port; each has its own admin port so each can be scraped.
  const adminPort = config.workerIndex === undefined || config.adminPort === 0 ? config.adminPort : config.adminPort + config.workerIndex - 1
  await listenOrExplain(admin, adminPort, config.adminHost, { port: 'ADMIN_PORT', host: 'ADMIN_HOST' })
  await listenOrExplain(app, config.port, config.host, { port: 'PORT', host: 'HOST' })
  void prewarm.run(config.prewarmTimeoutMs, logger)
  warnOfMissingFlags(flags, logger)
  logger.info({
    // The bound ports, not the configured ones: with PORT=0 the system picks them.
    public: `http://${config.host}:${boundPort(app.server.address(), config.port)}`,
    admin: `http://${config.adminHost}:${boundPort(admin.server.address(), adminPort)}`,
    baseDomain: config.baseDomain,
    legacy: config.legacyUrl ?? legacy?.url,
    tenants: `${registry.source} (${registry.size} schools)`,
    sessions: sessions.store.description,
    flags: flags.source,
    migratedRoutes: migratedRoutes.map((route) => `${route.name} <- ${route.flag}`),
    console: `http://${config.adminHost}:${boundPort(admin.server.address(), adminPort)}/console`
  }, 'ficus is serving')
  if (config.embedded.length > 0) logEmbeddedDefaults(config, boundPort(app.server.address(), config.port), boundPort(admin.server.address(), adminPort), registry, logger)

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      // The primary's relayed request repeats the signal the worker may have had from the terminal.
      if (signal === PRIMARY_STOP) return
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    readiness.startDraining()
    safety.stopShadow()
    logger.info({ signal, drainDelayMs: config.drainDelayMs }, 'draining: /readyz answers 503, still serving')
    await sleep(config.drainDelayMs)
    logger.info({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'no longer accepting: finishing the requests in flight')
    // Tunnels had the drain to finish; now each is ended cleanly (FIN both ways, bounded).
    const tunnelsClosed = tunnels.closeAll()
    // At the deadline the handlers still running are cancelled and given a moment to roll back
    // and answer; only then are connections cut, so nothing commits after its client was cut.
    const cancelRunning = async (): Promise<void> => {
      const cancelled = safety.cancelRunning('shutdown')
      if (cancelled === 0) return
      logger.warn({ cancelled }, 'handlers still running at SHUTDOWN_TIMEOUT_MS were cancelled')
      if (!await safety.settled(CANCEL_SETTLE_MS)) logger.warn({ running: safety.running, settleMs: CANCEL_SETTLE_MS }, 'cancelled handlers still running: cutting them')
    }
    const closed = await closeGracefully(app.server, () => app.close(), config.shutdownTimeoutMs, cancelRunning)
    if (closed.forced) logger.warn({ ms: closed.ms }, 'requests still in flight at SHUTDOWN_TIMEOUT_MS were cut')
    const tunnelCount = await tunnelsClosed
    if (tunnelCount > 0) logger.info({ tunnels: tunnelCount }, 'upgrade tunnels closed')
    // Pools and clients close within one fixed bound, whatever a hung server does.
    const closedAll = await within((async () => {
      await admin.close()
      for (const close of closers.reverse()) await close()
    })(), CLOSE_BOUND_MS)
    if (!closedAll) logger.warn({ closeBoundMs: CLOSE_BOUND_MS }, 'pools and clients still closing: exiting without them')
    const cut = closed.forced || !closedAll
    logger.info({ closeMs: closed.ms, forced: cut }, 'stopped')
    process.exit(cut ? 1 : 0)
  }
  process.on('SIGTERM', (signal) => void stop(signal))
  process.on('SIGINT', (signal) => void stop(signal))
  process.on('message', (message) => { if (message === PRIMARY_STOP) void stop(PRIMARY_STOP) })
  onHangUp = () => {
    const flagsFile = flags.reload()
    registry.reload()
    logger.info({ flags: flagsFile ? config.flagsFile : `${flags.source} (not a file)`, tenants: registry.source }, 'SIGHUP: flags and tenants files re-read')
  }
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

// The demo's first screen: what is embedded, who can reach it, and the pages to open.
function logEmbeddedDefaults (config: Config, port: number, adminPort: number, registry: { all (): Iterable<{ id: string }> }, logger: Logger): void {
  const schools = [...registry.all()].slice(0, 2).map((tenant) => tenant.id)
  const open = schools.map((id) => `http://${id}.${config.baseDomain}:${port}/attendance`)
  const admin = `http://${config.adminHost}:${adminPort}/decisions?tenant=${schools[0] ?? 'school-a'}`
  const reach = config.hostIsDefault
    ? `listening on ${config.host} only (set HOST=0.0.0.0 to listen on every interface)`
    : `listening on ${config.host} (HOST)`
  logger.info({ embedded: config.embedded, host: config.host, open, admin }, `embedded defaults in use, for a demo only: ${reach}; open ${open.join(' and ')}, admin ${admin}`)
}

// A route whose flag does not exist is on legacy everywhere, which is rarely what its author meant
// (a typo, or a flag not created yet): said once, as soon as the flags are loaded.
const FLAGS_READY_POLL_MS = 100
function warnOfMissingFlags (flags: Flags, logger: Logger): void {
  if (!flags.isReady()) {
    setTimeout(() => warnOfMissingFlags(flags, logger), FLAGS_READY_POLL_MS).unref()
    return
  }
  for (const warning of missingRouteFlags(flags, migratedRoutes)) logger.warn({ route: warning.route, flag: warning.flag }, warning.message)
}

// Asks a worker to drain and stop; sent over the cluster channel rather than as a signal.
const PRIMARY_STOP = 'ficus:stop'
const WORKER_RESTART_DELAY_MS = 1_000
const STARTUP_FAILED = 'ficus:startup-failed'

/**
 * The primary of WORKERS=N: forks the workers (each a full ficus on the shared port), replaces
 * one that dies, relays SIGTERM/SIGINT as a stop request, and exits when all have stopped
 * (0 when every one stopped cleanly). A second signal kills them.
 */
function runPrimary (count: number, logger: Logger): void {
  const workers = new Map<number, ReturnType<typeof cluster.fork>>()
  let stopping = false
  let failed = false
  const fork = (index: number): void => {
    const worker = cluster.fork({ FICUS_WORKER: String(index) })
    workers.set(index, worker)
    // A worker that could not start (a port taken, a broken file) would fail the same way again.
    worker.on('message', (message) => {
      if (message !== STARTUP_FAILED || stopping) return
      stopping = true
      failed = true
      logger.error({ worker: index }, 'a worker could not start: stopping the others')
      for (const other of workers.values()) if (other !== worker) other.send(PRIMARY_STOP)
    })
    worker.on('exit', (code, signal) => {
      workers.delete(index)
      if (stopping) {
        if (code !== 0) failed = true
        if (workers.size === 0) {
          logger.info({ failed }, 'all workers stopped')
          process.exit(failed ? 1 : 0)
        }
        return
      }
      logger.error({ worker: index, code, signal }, 'worker exited: starting another')
      setTimeout(() => { if (!stopping) fork(index) }, WORKER_RESTART_DELAY_MS)
    })
  }
  for (let index = 1; index <= count; index++) fork(index)
  logger.info({ workers: count, pid: process.pid }, 'primary: workers forked')
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: killing the workers')
      for (const worker of workers.values()) worker.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'primary: stopping the workers')
    if (workers.size === 0) process.exit(0)
    for (const worker of workers.values()) worker.send(PRIMARY_STOP)
  }
  process.on('SIGTERM', (signal) => stop(signal))
  process.on('SIGINT', (signal) => stop(signal))
  process.on('SIGHUP', () => { for (const worker of workers.values()) worker.process.kill('SIGHUP') })
}

function boundPort (address: string | AddressInfo | null, configured: number): number {
  return typeof address === 'object' && address !== null ? address.port : configured
}

await main().catch((error: unknown) => {
  if (!(error instanceof StartupError)) throw error
  process.stderr.write(`ficus: cannot start: ${error.message}\n`)
  if (process.send === undefined) process.exit(1)
  process.send(STARTUP_FAILED, () => process.exit(1))
})
