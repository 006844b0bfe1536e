// Schools' databases on PostgreSQL: one small pg pool per school, opened on first use, at most
// `poolsMax` of them (least recently used idle one closed to make room). Safe behind PgBouncer in
// transaction mode: nothing outlives a transaction on a connection (the statement timeout is SET
// LOCAL), and statements are never named, so no prepared statement is left on a server. A lone
// statement (`query`) travels in one round trip (pg-one-round-trip.ts).
import { Pool } from 'pg'
import type { PoolClient } from 'pg'
import { cancelledError, currentScope, type RequestScope } from '../cancellation/request-scope.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { BoundedLru } from './bounded-lru.ts'
import type { TenantDbConfig } from './config.ts'
import type { QueryResult, Row, TenantDatabase, TenantDatabases, TenantDatabasesStats, TenantTransaction } from './database.ts'
import { TenantDbErrors } from './errors.ts'
import { queryInOneRoundTrip } from './pg-one-round-trip.ts'
import { inPgTransaction, PG_TYPES } from './pg-transaction.ts'

export const DEFAULT_APPLICATION_NAME = 'ficus'
// The server cancels a statement at the statement timeout; the client gives up a little later,
// for a server that no longer answers at all.
export const CLIENT_TIMEOUT_GRACE_MS = 1_000

export type PgTenantDatabasesOptions = Pick<TenantDbConfig, 'poolsMax' | 'poolSize' | 'statementTimeoutMs' | 'connectTimeoutMs' | 'poolIdleMs'> & {
  readonly applicationName?: string
  /** Errors of idle connections (server restarted, network cut); the next query reconnects. */
  readonly onError?: (error: unknown, tenantId: string) => void
  /** A transaction committed although its request was cancelled while COMMIT was on its way. */
  readonly onCommittedDespiteCancel?: (tenantId: string, scope: RequestScope) => void
}

const ignore = (): void => {}

type Work<T> = (tx: TenantTransaction) => Promise<T>
type Runner = <T>(work: Work<T>) => Promise<T>
type QueryRunner = <R extends object>(text: string, values?: readonly unknown[]) => Promise<QueryResult<R>>

export class PgTenantDatabases implements TenantDatabases {
  readonly kind = 'postgres'
  readonly #options: PgTenantDatabasesOptions
  readonly #lru: BoundedLru<Pool>
  readonly #begin: string

  constructor (options: PgTenantDatabasesOptions) {
    this.#options = options
    this.#begin = `BEGIN; SET LOCAL statement_timeout = ${Math.trunc(options.statementTimeoutMs)}`
    this.#lru = new BoundedLru<Pool>({
      max: options.poolsMax,
      closeTimeoutMs: options.connectTimeoutMs,
      open: (tenantId, url) => this.#openPool(tenantId, url),
      close: (pool) => pool.end(),
      onCloseError: (error) => options.onError?.(error, 'closing pool')
    })
  }

  database (tenant: Tenant): TenantDatabase {
    const tenantId = tenant.id
    const url = tenant.databaseUrl
    return new PgTenantDatabase(tenantId, <T>(work: Work<T>) => this.#run(tenantId, url, work),
      <R extends object>(text: string, values?: readonly unknown[]) => this.#queryOnce<R>(tenantId, url, text, values))
  }

  stats (): TenantDatabasesStats {
    return { open: this.#lru.open, closing: this.#lru.closing, busy: this.#lru.busy, waiting: this.#lru.waiting }
  }

  close (): Promise<void> {
    return this.#lru.close()
  }

  #openPool (tenantId: string, url: string): Pool {
    const options = this.#options
    const pool = new Pool({
      connectionString: url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: options.poolIdleMs,
      query_timeout: options.statementTimeoutMs + CLIENT_TIMEOUT_GRACE_MS,
      application_name: options.applicationName ?? DEFAULT_APPLICATION_NAME,
      keepAlive: true,
      allowExitOnIdle: true,
      types: PG_TYPES
    })
    pool.on('error', (error) => options.onError?.(error, tenantId))
    // A connection that drops while checked out (between two statements of a transaction) has no
    // pool listener; its error reaches the next statement anyway, so the event itself is dropped.
    pool.on('connect', (client) => client.on('error', ignore))
    return pool
  }

  // Runs in the scope of the request whose handler called: its signal stops the work.
  #run<T> (tenantId: string, url: string | undefined, work: Work<T>): Promise<T> {
    return this.#withClient(tenantId, url, (client, scope, onCommittedDespiteCancel) =>
      // A connection in an unknown state is destroyed rather than handed to the next request.
      inPgTransaction(client, tenantId, this.#begin, work, (broken) => client.release(broken), {
        signal: scope?.signal,
        onCommittedDespiteCancel,
        onCommittedWrite: scope === undefined ? undefined : () => scope.noteCommittedWrite()
      }))
  }

  // One statement: the same transaction and statement timeout as #run, in one round trip.
  #queryOnce<R extends object> (tenantId: string, url: string | undefined, text: string, values: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    return this.#withClient(tenantId, url, (client, scope, onCommittedDespiteCancel) =>
      queryInOneRoundTrip<R>(client, tenantId, this.#options.statementTimeoutMs, text, values, (broken) => client.release(broken), {
        signal: scope?.signal,
        onCommittedDespiteCancel
      }))
  }

  // A connection of the school's pool, in the calling request's scope; `use` releases it.
  async #withClient<T> (tenantId: string, url: string | undefined,
    use: (client: PoolClient, scope: RequestScope | undefined, onCommittedDespiteCancel: (() => void) | undefined) => Promise<T>): Promise<T> {
    if (url === undefined) throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNCONFIGURED(tenantId)
    const scope = currentScope()
    const signal = scope?.signal
    if (signal?.aborted === true) throw cancelledError(signal)
    const entry = await this.#lru.acquire(tenantId, url, this.#options.connectTimeoutMs)
    try {
      let client: PoolClient
      try {
        client = await entry.resource.connect()
      } catch (error) {
        throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(tenantId, { cause: error })
      }
      const onCommitted = this.#options.onCommittedDespiteCancel
      return await use(client, scope, scope === undefined || onCommitted === undefined ? undefined : () => onCommitted(tenantId, scope))
    } finally {
      this.#lru.release(entry)
    }
  }
}

class PgTenantDatabase implements TenantDatabase {
  readonly tenantId: string
  readonly #run: Runner
  readonly #queryOnce: QueryRunner

  constructor (tenantId: string, run: Runner, queryOnce: QueryRunner) {
    this.tenantId = tenantId
    this.#run = run
    this.#queryOnce = queryOnce
  }

  query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#queryOnce<R>(text, values)
  }

  transaction<T> (work: Work<T>): Promise<T> {
    return this.#run(work)
  }
}
