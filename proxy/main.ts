// Starts ficus: reads the configuration, brings up what it names (or the embedded demo parts
// when it names nothing), listens, and shuts down cleanly on SIGTERM/SIGINT.
import type { AddressInfo } from 'node:net'
import { startDemoLegacyApp, type DemoLegacyApp } from '../demo/legacy-app.ts'
import { Flags } from '../flags/flags.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import { buildAdmin, Readiness } from './admin.ts'
import { ConfigError, parseConfig, type Config } from './config.ts'
import { createLogger } from './logger.ts'
import { openTenantRegistry } from './tenant-registry.ts'
import { decisionsFor } from './decisions.ts'
import { createSessions } from '../sessions/config.ts'
import { MemorySessionStore } from '../sessions/memory-store.ts'
import { buildProxy } from './server.ts'

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
  const closers: Array<() => Promise<void>> = []

  const sessionLog = logger.child({ component: 'sessions' })
  const sessions = createSessions(config.sessions, { info: (m) => sessionLog.info(m), warn: (m) => sessionLog.warn(m) })
  if (config.sessions.redisUrl === undefined) logger.info('REDIS_URL not set: sessions live in memory, in this process only')

  let legacy: DemoLegacyApp | undefined
  if (config.legacyUrl === undefined) {
    // The demo legacy shares the in-process session store, as a real one shares Redis.
    const shared = sessions.store instanceof MemorySessionStore ? sessions.store : undefined
    legacy = await startDemoLegacyApp(config.demoLegacyPort, '127.0.0.1', shared)
    closers.push(() => legacy?.close() ?? Promise.resolve())
    logger.info({ legacy: legacy.url }, 'LEGACY_URL not set: using the embedded demo legacy app')
  }

  // Closing it closes every school's database pool as well.
  const registry = await openTenantRegistry(config, logger)
  closers.push(() => registry.close())

  const flags = config.unleash === undefined
    ? await Flags.fromFile(config.flagsFile, logger, config.flagsPollMs)
    : Flags.fromServer(config.unleash, logger)
  closers.push(() => flags.close())
  if (config.unleash === undefined) logger.info({ flags: config.flagsFile }, 'UNLEASH_URL not set: flags come from the flags file')

  const readiness = new Readiness()
  // Forward to the demo app where it actually listens: DEMO_LEGACY_PORT=0 lets the system pick.
  const proxyConfig: Config = legacy === undefined ? config : Object.freeze({ ...config, legacyUrl: legacy.url })
  const app = await buildProxy({ config: proxyConfig, registry, flags, routes: migratedRoutes, logger, sessions })
  const admin = await buildAdmin({
    token: config.adminToken,
    logger,
    checks: [
      { name: 'flags', check: () => ({ ready: flags.isReady(), detail: flags.status() }) },
      { name: 'tenants', check: () => ({ ready: registry.size > 0, detail: { source: registry.source, count: registry.size } }) }
    ],
    decisions: (tenantId) => decisionsFor(tenantId, { registry, flags, routes: migratedRoutes, killSwitchFlag: config.killSwitchFlag })
  }, readiness)

  await admin.listen({ port: config.adminPort, host: config.adminHost })
  await app.listen({ port: config.port, host: config.host })
  logger.info({
    // The bound ports, not the configured ones: with PORT=0 the system picks them.
    public: `http://${config.host}:${boundPort(app.server.address(), config.port)}`,
    admin: `http://${config.adminHost}:${boundPort(admin.server.address(), config.adminPort)}`,
    baseDomain: config.baseDomain,
    legacy: config.legacyUrl ?? legacy?.url,
    tenants: `${registry.source} (${registry.size} schools)`,
    sessions: sessions.store.description,
    flags: flags.source,
    migratedRoutes: migratedRoutes.map((route) => `${route.name} <- ${route.flag}`)
  }, 'ficus is serving')

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    readiness.startDraining()
    await app.close()
    await admin.close()
    for (const close of closers.reverse()) await close()
    logger.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', (signal) => void stop(signal))
  process.on('SIGINT', (signal) => void stop(signal))
}

function boundPort (address: string | AddressInfo | null, configured: number): number {
  return typeof address === 'object' && address !== null ? address.port : configured
}

await main()
