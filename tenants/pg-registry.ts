// The tenant registry in PostgreSQL: the `tenants` table of the control database (DATABASE_URL),
// read whole into memory. A trigger on the table sends NOTIFY ficus_tenants on every change; this
// registry LISTENs on a connection of its own and reloads within milliseconds. A full reload every
// `refreshMs` is the safety net for notifications lost while that connection was down (which is
// also when it reconnects). LISTEN needs a session: point DATABASE_URL at PostgreSQL or at a
// session-mode pooler, not at a transaction-mode PgBouncer (there only the periodic reload works).
import { Client } from 'pg'
import { databaseUrlFromTemplate, redactUrl } from './database-url.ts'
import { TenantErrors } from './errors.ts'
import type { TenantRegistry } from './registry.ts'
import { TENANT_ID_PATTERN, TENANT_STATUSES } from './tenant.ts'
import type { Tenant, TenantStatus } from './tenant.ts'

export const TENANTS_CHANNEL = 'ficus_tenants'
export const DEFAULT_REGISTRY_REFRESH_MS = 60_000
export const DEFAULT_REGISTRY_CONNECT_TIMEOUT_MS = 5_000
const RECONNECT_MIN_MS = 500
const RECONNECT_MAX_MS = 30_000

export interface PgTenantRegistryOptions {
  readonly databaseUrl: string
  /** For rows that give `database_name` instead of `database_url`. */
  readonly databaseUrlTemplate?: string
  readonly refreshMs?: number
  /** Follow NOTIFY (default true); a one-shot reader such as `ficus migrate` does not need to. */
  readonly listen?: boolean
  readonly connectTimeoutMs?: number
  readonly onReload?: (count: number) => void
  /** A row that cannot be served (bad id or status) is left out, and said here. */
  readonly onInvalid?: (problem: string) => void
  /** The control database was lost or a reload failed; the last snapshot keeps being served. */
  readonly onError?: (error: Error) => void
}

interface TenantRow {
  id: unknown
  name: unknown
  database_url: unknown
  database_name: unknown
  status: unknown
  cohorts: unknown
  legacy: unknown
}

const SELECT_TENANTS = 'SELECT id, name, database_url, database_name, status, cohorts, legacy FROM tenants ORDER BY id'

export class PgTenantRegistry implements TenantRegistry {
  readonly source: string
  readonly #options: PgTenantRegistryOptions
  #tenants = new Map<string, Tenant>()
  #version = 0
  #client: Client | undefined
  #timer: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #reconnectDelay = RECONNECT_MIN_MS
  #reloading: Promise<void> | undefined
  #reloadAgain = false
  #closed = false

  constructor (options: PgTenantRegistryOptions) {
    this.#options = options
    this.source = `postgres ${redactUrl(options.databaseUrl)} (tenants table)`
  }

  get size (): number { return this.#tenants.size }
  get version (): number { return this.#version }

  async start (): Promise<void> {
    try {
      await this.#connect()
    } catch (error) {
      throw TenantErrors.FICUS_ERR_PG_REGISTRY_UNAVAILABLE(this.source, { cause: error })
    }
    const refreshMs = this.#options.refreshMs ?? DEFAULT_REGISTRY_REFRESH_MS
    this.#timer = setInterval(() => {
      if (this.#client === undefined) this.#reconnectSoon(0)
      else this.reload().catch((error: unknown) => this.#options.onError?.(asError(error)))
    }, refreshMs)
    this.#timer.unref()
  }

  get (id: string): Tenant | undefined {
    return this.#tenants.get(id)
  }

  all (): Iterable<Tenant> {
    return this.#tenants.values()
  }

  /** Reads the table again now; concurrent calls share one read, and one more after it if needed. */
  reload (): Promise<void> {
    if (this.#reloading !== undefined) {
      this.#reloadAgain = true
      return this.#reloading
    }
    this.#reloading = (async () => {
      try {
        do {
          this.#reloadAgain = false
          await this.#readAll()
        } while (this.#reloadAgain && !this.#closed)
      } finally {
        this.#reloading = undefined
      }
    })()
    return this.#reloading
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    clearTimeout(this.#reconnectTimer)
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => {})
  }

  async #connect (): Promise<void> {
    const client = new Client({
      connectionString: this.#options.databaseUrl,
      connectionTimeoutMillis: this.#options.connectTimeoutMs ?? DEFAULT_REGISTRY_CONNECT_TIMEOUT_MS,
      application_name: 'ficus-registry',
      keepAlive: true
    })
    client.on('error', (error) => this.#lost(client, error))
    client.on('end', () => this.#lost(client, new Error('control database connection ended')))
    client.on('notification', () => {
      this.reload().catch((error: unknown) => this.#options.onError?.(asError(error)))
    })
    try {
      await client.connect()
      // LISTEN before the read: a change committed in between is then either read or notified.
      if (this.#options.listen ?? true) await client.query(`LISTEN ${TENANTS_CHANNEL}`)
      this.#client = client
      await this.reload()
      this.#reconnectDelay = RECONNECT_MIN_MS
    } catch (error) {
      if (this.#client === client) this.#client = undefined
      await client.end().catch(() => {})
      throw error
    }
  }

  #lost (client: Client, error: Error): void {
    if (this.#client !== client) return
    this.#client = undefined
    client.end().catch(() => {})
    if (this.#closed) return
    this.#options.onError?.(error)
    this.#reconnectSoon(this.#reconnectDelay)
  }

  #reconnectSoon (delayMs: number): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      if (this.#closed || this.#client !== undefined) return
      this.#connect().catch((error: unknown) => {
        this.#options.onError?.(asError(error))
        this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MAX_MS)
        this.#reconnectSoon(this.#reconnectDelay)
      })
    }, delayMs)
    this.#reconnectTimer.unref()
  }

  async #readAll (): Promise<void> {
    const client = this.#client
    if (client === undefined) throw TenantErrors.FICUS_ERR_PG_REGISTRY_UNAVAILABLE(`${this.source}: not connected`)
    const { rows } = await client.query<TenantRow>(SELECT_TENANTS)
    const previous = this.#tenants
    const next = new Map<string, Tenant>()
    let changed = false
    for (const row of rows) {
      const tenant = this.#tenantOf(row)
      if (tenant === undefined) continue
      const old = previous.get(tenant.id)
      // An unchanged school keeps its object, so whatever was derived from it stays valid.
      const kept = old !== undefined && sameTenant(old, tenant)
      next.set(tenant.id, kept ? old : tenant)
      if (!kept) changed = true
    }
    if (this.#closed) return
    this.#tenants = next
    if (changed || next.size !== previous.size) this.#version++
    this.#options.onReload?.(next.size)
  }

  #tenantOf (row: TenantRow): Tenant | undefined {
    const { id, name, status, cohorts } = row
    if (typeof id !== 'string' || !TENANT_ID_PATTERN.test(id)) {
      this.#options.onInvalid?.(`tenants row with id ${JSON.stringify(id)} skipped: the id must be a lower-case DNS label, e.g. school-a`)
      return undefined
    }
    if (typeof status !== 'string' || !(TENANT_STATUSES as readonly string[]).includes(status)) {
      this.#options.onInvalid?.(`tenant ${id} skipped: status must be one of ${TENANT_STATUSES.join(', ')}`)
      return undefined
    }
    const databaseUrl = typeof row.database_url === 'string' && row.database_url !== ''
      ? row.database_url
      : databaseUrlFromTemplate(this.#options.databaseUrlTemplate, typeof row.database_name === 'string' ? row.database_name : undefined)
    const tenant: { -readonly [K in keyof Tenant]: Tenant[K] } = {
      id,
      name: typeof name === 'string' ? name : id,
      status: status as TenantStatus,
      cohorts: Object.freeze(Array.isArray(cohorts) ? cohorts.filter((c): c is string => typeof c === 'string') : [])
    }
    if (databaseUrl !== undefined) tenant.databaseUrl = databaseUrl
    if (typeof row.legacy === 'string') tenant.legacy = row.legacy
    return Object.freeze(tenant)
  }
}

function sameTenant (a: Tenant, b: Tenant): boolean {
  return a.name === b.name && a.status === b.status && a.databaseUrl === b.databaseUrl && a.legacy === b.legacy &&
    a.cohorts.length === b.cohorts.length && a.cohorts.every((cohort, i) => cohort === b.cohorts[i])
}

function asError (error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}
