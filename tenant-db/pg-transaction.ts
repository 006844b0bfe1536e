// One transaction on one pg connection, shared by the school pools and the migration runner.
// The handle refuses queries once the transaction has ended, so a handler that kept it cannot
// run a statement on a connection that meanwhile serves another request.
import { connect } from 'node:net'
import { Client, TypeOverrides } from 'pg'
import type { ClientBase } from 'pg'
import { cancelledError } from '../cancellation/request-scope.ts'
import type { QueryResult, Row, TenantTransaction } from './database.ts'
import { TenantDbErrors } from './errors.ts'
import type { MigrationTarget } from './migrate.ts'
import { leavesConnectionUsable, toTenantDbError } from './pg-errors.ts'

const DATE_OID = 1082
const INT8_OID = 20
/** A DATE is a calendar day, not an instant: kept as 'YYYY-MM-DD' (and int8 as a string), as on PGlite. */
export const PG_TYPES = new TypeOverrides()
PG_TYPES.setTypeParser(DATE_OID, 'text', (value: string) => value)
PG_TYPES.setTypeParser(INT8_OID, 'text', (value: string) => value)

export interface PgTransactionOptions {
  /** When it fires the transaction is rolled back: never committed once it has fired. */
  readonly signal?: AbortSignal
  /** The signal fired while COMMIT was already on its way, and the commit went through. */
  readonly onCommittedDespiteCancel?: () => void
  /** A transaction that changed something was committed. */
  readonly onCommittedWrite?: () => void
}

/**
 * Runs `work` between `begin` (e.g. `BEGIN; SET LOCAL statement_timeout = 5000`) and COMMIT,
 * rolling back when it throws. `done` learns whether the connection must be destroyed.
 * When `signal` fires before COMMIT is sent, the running statement is cancelled (PostgreSQL's
 * cancel request), the connection is closed (the server rolls back) and destroyed, never handed
 * to the next request mid-statement, and `work`'s next statement fails with the signal's reason.
 */
export async function inPgTransaction<T> (client: ClientBase, label: string, begin: string,
  work: (tx: TenantTransaction) => Promise<T>, done: (broken: Error | undefined) => void, options: PgTransactionOptions = {}): Promise<T> {
  const signal = options.signal
  if (signal?.aborted === true) {
    done(undefined)
    throw cancelledError(signal)
  }
  const tx = new PgTransaction(client, label, signal)
  const onAbort = (): void => tx.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    await tx.begin(begin)
    const result = await work(tx)
    await tx.commit()
    if (tx.wrote) options.onCommittedWrite?.()
    if (fired(signal)) options.onCommittedDespiteCancel?.()
    return result
  } catch (error) {
    await tx.rollback()
    throw error
  } finally {
    signal?.removeEventListener('abort', onAbort)
    done(tx.finish())
  }
}

class PgTransaction implements TenantTransaction {
  readonly #label: string
  readonly #signal: AbortSignal | undefined
  #client: ClientBase | undefined
  #broken: Error | undefined
  #running = 0
  #committing = false
  /** Whether a statement other than a read ran: SELECT and SHOW read, anything else may write. */
  wrote = false

  constructor (client: ClientBase, label: string, signal: AbortSignal | undefined) {
    this.#client = client
    this.#label = label
    this.#signal = signal
  }

  async query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    const client = this.#live()
    this.#running++
    try {
      const result = await client.query<R & Row>(text, values as unknown[] | undefined)
      if (result.command !== 'SELECT' && result.command !== 'SHOW') this.wrote = true
      return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length }
    } catch (error) {
      throw this.#failed(error)
    } finally {
      this.#running--
    }
  }

  async exec (script: string): Promise<void> {
    this.wrote = true
    await this.#send(script)
  }

  begin (script: string): Promise<void> {
    return this.#send(script)
  }

  async #send (script: string): Promise<void> {
    const client = this.#live()
    this.#running++
    try {
      await client.query(script)
    } catch (error) {
      throw this.#failed(error)
    } finally {
      this.#running--
    }
  }

  /** COMMIT, unless the signal has fired; once COMMIT is sent, the signal no longer stops it. */
  async commit (): Promise<void> {
    this.#live()
    this.#committing = true
    await this.#send('COMMIT')
  }

  /** The signal fired: stop the statement running and drop the connection, unless COMMIT is on its way. */
  cancel (): void {
    const client = this.#client
    if (client === undefined || this.#committing || this.#broken !== undefined) return
    this.#broken = this.#signal === undefined ? new Error('cancelled') : cancelledError(this.#signal)
    if (this.#running > 0) sendCancelRequest(client)
    // The server rolls back an open transaction when its connection ends.
    ;(client as ClientBase & { end (): Promise<void> }).end().catch(() => {})
  }

  async rollback (): Promise<void> {
    const client = this.#client
    if (client === undefined || this.#broken !== undefined) return
    try {
      await client.query('ROLLBACK')
    } catch (error) {
      this.#broken = asError(error)
    }
  }

  finish (): Error | undefined {
    this.#client = undefined
    return this.#broken
  }

  #live (): ClientBase {
    if (this.#signal?.aborted === true && !this.#committing) throw cancelledError(this.#signal)
    if (this.#client === undefined) throw TenantDbErrors.FICUS_ERR_TENANT_DB_TX_FINISHED(this.#label)
    return this.#client
  }

  #failed (error: unknown): unknown {
    if (this.#signal?.aborted === true && !this.#committing) return cancelledError(this.#signal)
    if (!leavesConnectionUsable(error)) this.#broken = asError(error)
    return toTenantDbError(error, this.#label)
  }
}

// How long a cancel request may take to reach the server; it is best effort either way, as the
// connection is closed at once and the server stops when it next talks to it.
const CANCEL_REQUEST_TIMEOUT_MS = 2_000
const CANCEL_REQUEST_CODE = 80877102

interface BackendKey { readonly processID: number | null, readonly secretKey: number | null, readonly host: string, readonly port: number }

/** PostgreSQL's cancel request: a new connection that names the backend and its secret key. */
export function sendCancelRequest (client: ClientBase): void {
  const { processID, secretKey, host, port } = client as unknown as BackendKey
  if (processID === null || secretKey === null || host.startsWith('/')) return
  const message = Buffer.alloc(16)
  message.writeInt32BE(16, 0)
  message.writeInt32BE(CANCEL_REQUEST_CODE, 4)
  message.writeInt32BE(processID, 8)
  message.writeInt32BE(secretKey, 12)
  const socket = connect({ host, port, timeout: CANCEL_REQUEST_TIMEOUT_MS })
  socket.on('error', () => {})
  socket.on('timeout', () => socket.destroy())
  socket.on('connect', () => socket.end(message))
}

// A function, not an inline check: TypeScript would keep `aborted` narrowed from the first look.
function fired (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function asError (error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

export interface PgMigrationTargetOptions {
  readonly connectTimeoutMs: number
  readonly applicationName: string
  /** Names the database in errors (a school id, or `control`); never the URL, which may hold a password. */
  readonly label: string
}

/**
 * One plain connection for running migrations: no statement timeout (a migration may take long),
 * closed by the caller. Connection failures come out as FICUS_ERR_TENANT_DB_UNAVAILABLE.
 */
export async function openPgMigrationTarget (url: string, options: PgMigrationTargetOptions): Promise<MigrationTarget & { close (): Promise<void> }> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: options.connectTimeoutMs, application_name: options.applicationName, types: PG_TYPES })
  // A connection lost between queries surfaces on the next query; the event itself must not crash the process.
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(options.label, { cause: error })
  }
  const ignore = (): void => {}
  return {
    query: <R extends object = Row>(text: string, values?: readonly unknown[]) =>
      inPgTransaction(client, options.label, 'BEGIN', (tx) => tx.query<R>(text, values), ignore),
    transaction: <T>(work: (tx: TenantTransaction) => Promise<T>) => inPgTransaction(client, options.label, 'BEGIN', work, ignore),
    close: () => client.end()
  }
}
