// Settings of the schools' databases, parsed from the environment that proxy/config.ts (or the
// `ficus migrate` entry point) hands over. Without DATABASE_URL every school gets an in-process
// PGlite database, so the demo needs no server.
import { fileURLToPath } from 'node:url'
import { readSet, readWholeNumber, type Env } from '../config/env.ts'
import { DATABASE_NAME_PLACEHOLDER } from '../tenants/database-url.ts'

// This module runs from tenant-db/ or from dist/tenant-db/; the SQL files stay in the source tree.
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../migrations/' : '../migrations/', import.meta.url))

export const TENANT_DB_DEFAULTS = Object.freeze({
  TENANT_POOLS_MAX: 50,
  TENANT_POOL_SIZE: 2,
  TENANT_STATEMENT_TIMEOUT_MS: 5_000,
  TENANT_CONNECT_TIMEOUT_MS: 2_000,
  TENANT_POOL_IDLE_MS: 30_000,
  TENANT_REGISTRY_REFRESH_MS: 60_000,
  TENANT_MIGRATE_CONCURRENCY: 4,
  TENANT_PGLITE_MAX: 8,
  MIGRATIONS_DIR: DEFAULT_MIGRATIONS_DIR
})

export interface TenantDbConfig {
  /** The control database holding the `tenants` table; undefined = embedded PGlite per school. Not enumerable. */
  readonly databaseUrl: string | undefined
  /** `postgres://user@host:5432/{database}` for tenant rows that give a database name only. Not enumerable. */
  readonly databaseUrlTemplate: string | undefined
  readonly poolsMax: number
  readonly poolSize: number
  readonly statementTimeoutMs: number
  /** Bounds connecting, waiting for a free connection and waiting for a free pool, each. */
  readonly connectTimeoutMs: number
  readonly poolIdleMs: number
  readonly registryRefreshMs: number
  readonly migrateConcurrency: number
  /** Undefined: embedded databases live in memory and are lost on exit. */
  readonly pgliteDir: string | undefined
  readonly pgliteMax: number
  readonly migrationsDir: string
}


function integer (env: Env, name: keyof typeof TENANT_DB_DEFAULTS, min: number, example: number, problems: string[]): number {
  return readWholeNumber(env, name, { fallback: TENANT_DB_DEFAULTS[name] as number, min, example }, problems)
}

function postgresUrl (raw: string): boolean {
  try {
    const url = new URL(raw)
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== ''
  } catch {
    return false
  }
}

export function parseTenantDbConfig (env: Env, problems: string[]): TenantDbConfig {
  let databaseUrl = readSet(env, 'DATABASE_URL', problems)
  if (databaseUrl !== undefined && !postgresUrl(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// URL of the control database, e.g. DATABASE_URL=postgres://ficus@127.0.0.1:5432/ficus_control')
    databaseUrl = undefined
  }
  let databaseUrlTemplate = readSet(env, 'TENANT_DATABASE_URL_TEMPLATE', problems)
  if (databaseUrlTemplate !== undefined &&
    (!databaseUrlTemplate.includes(DATABASE_NAME_PLACEHOLDER) || !postgresUrl(databaseUrlTemplate.replace(DATABASE_NAME_PLACEHOLDER, 'x')))) {
    problems.push(`TENANT_DATABASE_URL_TEMPLATE must be a postgres:// URL containing ${DATABASE_NAME_PLACEHOLDER}, e.g. TENANT_DATABASE_URL_TEMPLATE=postgres://ficus@127.0.0.1:5432/${DATABASE_NAME_PLACEHOLDER}`)
    databaseUrlTemplate = undefined
  }
  const pgliteDir = readSet(env, 'TENANT_PGLITE_DIR', problems)
  const config = {
    poolsMax: integer(env, 'TENANT_POOLS_MAX', 1, 50, problems),
    poolSize: integer(env, 'TENANT_POOL_SIZE', 1, 2, problems),
    statementTimeoutMs: integer(env, 'TENANT_STATEMENT_TIMEOUT_MS', 1, 5000, problems),
    connectTimeoutMs: integer(env, 'TENANT_CONNECT_TIMEOUT_MS', 1, 2000, problems),
    poolIdleMs: integer(env, 'TENANT_POOL_IDLE_MS', 1, 30000, problems),
    registryRefreshMs: integer(env, 'TENANT_REGISTRY_REFRESH_MS', 100, 60000, problems),
    migrateConcurrency: integer(env, 'TENANT_MIGRATE_CONCURRENCY', 1, 4, problems),
    pgliteDir,
    pgliteMax: integer(env, 'TENANT_PGLITE_MAX', 1, 8, problems),
    migrationsDir: readSet(env, 'MIGRATIONS_DIR', problems) ?? TENANT_DB_DEFAULTS.MIGRATIONS_DIR
  }
  // Connection strings may carry passwords: kept out of JSON.stringify and of logged configs.
  Object.defineProperty(config, 'databaseUrl', { value: databaseUrl, enumerable: false })
  Object.defineProperty(config, 'databaseUrlTemplate', { value: databaseUrlTemplate, enumerable: false })
  return Object.freeze(config as typeof config & Pick<TenantDbConfig, 'databaseUrl' | 'databaseUrlTemplate'>)
}
