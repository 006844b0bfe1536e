// Starts ficus: reads the configuration, brings up what it names (or the embedded demo parts
// when it names nothing), pre-warms, listens, and drains then shuts down on SIGTERM/SIGINT.
// With WORKERS=N the first process only forks N workers on the same port and relays signals.
// First: on an older Node it stops here, with one line saying what to install.
import './node-version.ts'
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { CANCEL_SETTLE_MS, CLOSE_BOUND_MS, closeGracefully, sleep, within } from '../safety/lifecycle.ts'
import type { Flags } from '../flags/flags.ts'
import { listenOrExplain, StartupError } from './startup-error.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import { ConfigError, parseConfig, type Config } from './config.ts'
import { createFicus } from './create-ficus.ts'
import { createLogger } from './logger.ts'
import { missingRouteFlags } from './decisions.ts'

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
  const ficus = await createFicus(config, { logger })
  const { app, admin, registry, safety, tunnels, readiness, prewarm, sessions } = ficus
  // Built from the configuration, never brought in: the file or Unleash-backed flags.
  const flags = ficus.flags as Flags

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
    legacy: config.legacyUrl ?? ficus.demoLegacy?.url,
    tenants: `${registry.source} (${registry.size} schools)`,
    sessions: sessions?.store.description,
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
    // Tunnels had the drain to finish; now each is closed cleanly (a WebSocket close handshake, 1001, else FIN both ways; bounded).
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
    const closedAll = await within(ficus.closeParts(), CLOSE_BOUND_MS)
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
    registry.reload?.()
    logger.info({ flags: flagsFile ? config.flagsFile : `${flags.source} (not a file)`, tenants: registry.source }, 'SIGHUP: flags and tenants files re-read')
  }
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
