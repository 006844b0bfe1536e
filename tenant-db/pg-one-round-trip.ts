// A single statement in one round trip. `BEGIN`, `SET LOCAL statement_timeout`, the statement and
// `COMMIT` are written at once as extended-protocol messages closed by one Sync, so the server
// answers them all before the client speaks again: the same transaction, the same per-statement
// timeout and the same commit as `inPgTransaction`, for one round trip instead of three.
// Behind PgBouncer in transaction mode the server connection is held from BEGIN to the
// ReadyForQuery after COMMIT, and only unnamed statements are used.
import { createRequire } from 'node:module'
import { Query } from 'pg'
import type { ClientBase, QueryConfig } from 'pg'
import { cancelledError } from '../cancellation/request-scope.ts'
import type { QueryResult, Row } from './database.ts'
import { leavesConnectionUsable, toTenantDbError } from './pg-errors.ts'
import { sendCancelRequest } from './pg-transaction.ts'

// pg's own conversion of a parameter to its wire text (dates, arrays, buffers, JSON), as its
// Query uses it; not part of pg's typed surface, so loaded from its published lib/ path.
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown }

/** The message writers of pg's connection that this query uses. */
interface Wire {
  parse (message: { text: string, types?: unknown[] }): void
  bind (message: { values?: unknown[] }): void
  describe (message: { type: 'P', name: string }): void
  execute (message: { rows?: number }): void
  sync (): void
}

interface PgResult { rows: Row[], rowCount: number | null }

// Where the statement's own result sits among BEGIN, SET, the statement and COMMIT.
const STATEMENT_RESULT = 2

class OneRoundTripQuery extends Query {
  declare readonly text: string
  declare readonly types: unknown[] | undefined
  readonly #values: unknown[]
  readonly #setTimeout: string

  constructor (text: string, values: readonly unknown[], statementTimeoutMs: number) {
    // Extended mode even without values: Parse refuses a second statement hidden in the text.
    super({ text, queryMode: 'extended' } as QueryConfig)
    // Converted before anything is written: a value pg cannot send fails here, with the
    // connection untouched, rather than halfway through the messages.
    this.#values = values.map(prepareValue)
    this.#setTimeout = `SET LOCAL statement_timeout = ${Math.trunc(statementTimeoutMs)}`
  }

  // Called by pg's Query.submit with the stream corked: everything leaves in one write.
  prepare (connection: Wire): void {
    const run = (text: string): void => {
      connection.parse({ text })
      connection.bind({})
      connection.execute({})
    }
    run('BEGIN')
    run(this.#setTimeout)
    connection.parse({ text: this.text, types: this.types })
    connection.bind({ values: this.#values })
    connection.describe({ type: 'P', name: '' })
    connection.execute({})
    run('COMMIT')
    connection.sync()
  }
}

export interface OneRoundTripOptions {
  /** The request's cancellation: the statement is cancelled on the server and the connection dropped. */
  readonly signal?: AbortSignal
  /** The signal fired, yet the server had already committed (the COMMIT travels with the statement). */
  readonly onCommittedDespiteCancel?: () => void
}

/**
 * Runs one statement in its own transaction in one round trip. On an error the transaction is
 * rolled back (a second round trip, on the failure path only) or, if the connection can no
 * longer be trusted, `done` is told to destroy it. When `signal` fires meanwhile, the statement
 * gets PostgreSQL's cancel request and the connection is closed (the server rolls back what has
 * not committed) and destroyed, as `inPgTransaction` does.
 */
export async function queryInOneRoundTrip<R extends object = Row> (client: ClientBase, label: string, statementTimeoutMs: number,
  text: string, values: readonly unknown[] | undefined, done: (broken: Error | undefined) => void,
  options: OneRoundTripOptions = {}): Promise<QueryResult<R>> {
  const signal = options.signal
  let query: OneRoundTripQuery
  try {
    if (signal?.aborted === true) throw cancelledError(signal)
    query = new OneRoundTripQuery(text, values ?? [], statementTimeoutMs)
  } catch (error) {
    done(undefined)
    throw error
  }
  let broken: Error | undefined
  const onAbort = (): void => {
    if (signal === undefined) return
    broken = cancelledError(signal)
    sendCancelRequest(client)
    ;(client as ClientBase & { end (): Promise<void> }).end().catch(() => {})
  }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const results = await new Promise<PgResult[]>((resolve, reject) => {
      client.query(query as never, (error: Error | undefined, answer: unknown) => {
        if (error !== undefined && error !== null) reject(error)
        else resolve(answer as PgResult[])
      })
    })
    if (fired(signal)) {
      options.onCommittedDespiteCancel?.()
      throw cancelledError(signal)
    }
    const result = results[STATEMENT_RESULT] as PgResult
    return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length }
  } catch (error) {
    if (fired(signal)) throw cancelledError(signal)
    if (!leavesConnectionUsable(error)) broken = error instanceof Error ? error : new Error(String(error))
    else {
      try {
        await client.query('ROLLBACK')
      } catch (rollbackError) {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError))
      }
    }
    throw toTenantDbError(error, label)
  } finally {
    signal?.removeEventListener('abort', onAbort)
    done(broken)
  }
}

// A function, not an inline check: TypeScript would keep `aborted` narrowed from the first look.
function fired (signal: AbortSignal | undefined): signal is AbortSignal {
  return signal?.aborted === true
}
