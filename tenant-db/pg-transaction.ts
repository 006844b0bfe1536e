// One transaction on one pg connection, shared by the school pools and the migration runner.
// The handle refuses queries once the transaction has ended, so a handler that kept it cannot
// run a statement on a connection that meanwhile serves another request.
import { Client, TypeOverrides } from 'pg'
import type { ClientBase } from 'pg'
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

/**
 * Runs `work` between `begin` (e.g. `BEGIN; SET LOCAL statement_timeout = 5000`) and COMMIT,
 * rolling back when it throws. `done` learns whether the connection must be destroyed.
 */
export async function inPgTransaction<T> (client: ClientBase, label: string, begin: string,
  work: (tx: TenantTransaction) => Promise<T>, done: (broken: Error | undefined) => void): Promise<T> {
  const tx = new PgTransaction(client, label)
  try {
    await tx.exec(begin)
    const result = await work(tx)
    await tx.exec('COMMIT')
    return result
  } catch (error) {
    await tx.rollback()
    throw error
  } finally {
    done(tx.finish())
  }
}

class PgTransaction implements TenantTransaction {
  readonly #label: string
  #client: ClientBase | undefined
  #broken: Error | undefined

  constructor (client: ClientBase, label: string) {
    this.#client = client
    this.#label = label
  }

  async query<R extends object = Row> (text: string, values?: readonly unknown[]): Promise<QueryResult<R>> {
    const client = this.#live()
    try {
      const result = await client.query<R & Row>(text, values as unknown[] | undefined)
      return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length }
    } catch (error) {
      throw this.#failed(error)
    }
  }

  async exec (script: string): Promise<void> {
    const client = this.#live()
    try {
      await client.query(script)
    } catch (error) {
      throw this.#failed(error)
    }
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
    if (this.#client === undefined) throw TenantDbErrors.FICUS_ERR_TENANT_DB_TX_FINISHED(this.#label)
    return this.#client
  }

  #failed (error: unknown): unknown {
    if (!leavesConnectionUsable(error)) this.#broken = asError(error)
    return toTenantDbError(error, this.#label)
  }
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
