// The migration console, put together from the parts ficus already has: the flags engine, the
// school registry, the safety nets' shadow counts and breakers, and the metrics. main.ts makes
// one and the admin listener registers its plugin under /console.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Flags } from '../flags/flags.ts'
import type { FicusMetrics } from '../metrics/registry.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { RouteGuard } from '../safety/safety-net.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import { ConsoleAuth } from './auth.ts'
import type { ConsoleConfig } from './config.ts'
import { FileFlagStore, ReadOnlyFlagStore, type FlagStore } from './flag-store.ts'
import { FileChangeLog } from './history.ts'
import { MigrationConsole } from './migration.ts'
import { consolePlugin } from './plugin.ts'
import { UnleashAdminFlagStore } from './unleash-store.ts'
import { FileSchedule } from './schedule.ts'
import { controlPool, PgChangeLog, PgSchedule } from './pg-console.ts'

export interface ConsoleWiring {
  readonly config: ConsoleConfig
  readonly adminToken: string | undefined
  readonly routes: readonly MigratedRoute[]
  readonly registry: TenantRegistry
  readonly flags: Flags
  readonly killSwitchFlag: string | undefined
  readonly guards: readonly RouteGuard[]
  readonly metrics: FicusMetrics | undefined
  /** Where flags live: the flags file, or Unleash (then UNLEASH_ADMIN_URL is required to make moves). */
  readonly flagsFile: string
  readonly unleashEnvironment: string | undefined
  /** The control database: the change log and the schedule live there when it is set. */
  readonly controlDatabaseUrl: string | undefined
  /** 1..WORKERS in a cluster: without a control database only worker 1 applies scheduled changes. */
  readonly workerIndex: number | undefined
  readonly logger: { info (obj: object, msg: string): void, warn (obj: object, msg: string): void }
}

export interface Console {
  readonly plugin: (app: FastifyInstance) => Promise<void>
  readonly migration: MigrationConsole
  close (): Promise<void>
}

export function createConsole (wiring: ConsoleWiring): Console {
  const { config } = wiring
  let store: FlagStore
  if (config.unleashAdmin !== undefined) {
    store = new UnleashAdminFlagStore({ ...config.unleashAdmin, environment: wiring.unleashEnvironment ?? 'default' })
  } else if (wiring.unleashEnvironment !== undefined) {
    wiring.logger.warn({}, 'UNLEASH_URL is set without UNLEASH_ADMIN_URL: the console shows where routes stand but makes no move')
    store = new ReadOnlyFlagStore()
  } else {
    store = new FileFlagStore(wiring.flagsFile)
  }
  let adminToken = wiring.adminToken
  if (adminToken === undefined && config.users.length === 0) {
    // Nobody configured to sign in: a token for this run only, written to the log (which only
    // whoever runs the process reads), rather than an open console.
    adminToken = randomBytes(18).toString('base64url')
    wiring.logger.info({ user: 'admin', password: adminToken }, 'ADMIN_TOKEN and CONSOLE_USERS not set: sign in to the console as admin with this one-run password')
  }
  const pool = wiring.controlDatabaseUrl === undefined ? undefined : controlPool(wiring.controlDatabaseUrl)
  const migration = new MigrationConsole({
    routes: wiring.routes,
    registry: wiring.registry,
    flags: wiring.flags,
    killSwitchFlag: wiring.killSwitchFlag,
    guards: wiring.guards,
    metrics: wiring.metrics,
    store,
    log: pool === undefined ? new FileChangeLog(config.historyFile) : new PgChangeLog(pool),
    schedule: pool === undefined ? new FileSchedule(config.scheduleFile) : new PgSchedule(pool),
    freezeWindows: config.freezeWindows,
    appliesSchedule: pool !== undefined || wiring.workerIndex === undefined || wiring.workerIndex === 1,
    logger: wiring.logger
  })
  const plugin = consolePlugin({
    migration,
    auth: new ConsoleAuth(config.users, adminToken),
    flags: wiring.flags,
    killSwitchFlag: wiring.killSwitchFlag,
    adminOnly: config.users.length === 0
  })
  return {
    plugin,
    migration,
    async close () {
      migration.close()
      await pool?.end()
    }
  }
}
