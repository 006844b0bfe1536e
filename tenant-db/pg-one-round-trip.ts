// A single statement in one round trip. `BEGIN`, `SET LOCAL statement_timeout`, the statement and
// `COMMIT` are written at once as extended-protocol messages closed by one Sync, so the server
// answers them all before the client speaks again: the same transaction, the same per-statement
// timeout and the same commit as `inPgTransaction`, for one round trip instead of three.
// Behind PgBouncer in transaction mode the server connection is held from BEGIN to the
// ReadyForQuery after COMMIT, and only unnamed statements are used.
import { createRequire } from 'node:module'
import { Query } from 'pg'
import type { ClientBase, QueryConfig } from 'pg'
import type { QueryResult, Row } from './database.ts'
import { leavesConnectionUsable, toTenantDbError } from './pg-errors.ts'

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

/**
 * Runs one statement in its own transaction in one round trip. On an error the transaction is
 * rolled back (a second round trip, on the failure path only) or, if the connection can no
 * longer be trusted, `done` is told to destroy it.
 */
export async function queryInOneRoundTrip<R extends object = Row> (client: ClientBase, label: string, statementTimeoutMs: number,
  text: string, values: readonly unknown[] | undefined, done: (broken: Error | undefined) => void): Promise<QueryResult<R>> {
  let query: OneRoundTripQuery
  try {
    query = new OneRoundTripQuery(text, values ?? [], statementTimeoutMs)
  } catch (error) {
    done(undefined)
    throw error
  }
  let broken: Error | undefined
  try {
    const results = await new Promise<PgResult[]>((resolve, reject) => {
      client.query(query as never, (error: Error | undefined, answer: unknown) => {
        if (error !== undefined && error !== null) reject(error)
        else resolve(answer as PgResult[])
      })
    })
    const result = results[STATEMENT_RESULT] as PgResult
    return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length }
  } catch (error) {
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
    done(broken)
  }
}
