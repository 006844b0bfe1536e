// Writes of migrated handlers, audited in the same transaction and the same (school's own)
// database as the write itself: the audit row exists exactly when the change was committed.
import type { Row, TenantDatabase, TenantTransaction } from './database.ts'

export const AUDIT_TABLE = 'audit_log'

export interface AuditActor {
  /** The signed-in user, from the session when there is one. */
  readonly userId: string | null
  /** The request id the edge logs, so an audit row leads to the access log line. */
  readonly requestId: string
}

export interface AuditChange {
  readonly table: string
  /** The changed row's key, e.g. `{ pupilId: 'p1', day: '2024-05-06' }`. */
  readonly key: Readonly<Record<string, unknown>>
  /** The row before the write; null when it was created. */
  readonly before: unknown
  /** The row after the write; null when it was deleted. */
  readonly after: unknown
}

export interface AuditedTransaction extends TenantTransaction {
  /** Records changes made in this transaction; one statement whatever their number. */
  record (changes: readonly AuditChange[]): Promise<void>
}

// One INSERT for any number of changes: the changes travel as one JSON parameter.
const INSERT_AUDIT = `INSERT INTO ${AUDIT_TABLE} (school_id, user_id, request_id, action, table_name, row_key, before, after)
SELECT $1, $2, $3, c.action, c.table_name, c.row_key, c.before, c.after
FROM jsonb_to_recordset($4::jsonb) AS c(action text, table_name text, row_key jsonb, before jsonb, after jsonb)`

/**
 * Runs `work` in a transaction of the school's database in which `record` writes audit rows
 * naming the school (the database handle's own), the user, the request and the time.
 */
export function auditedWrite<T> (db: TenantDatabase, actor: AuditActor, work: (tx: AuditedTransaction) => Promise<T>): Promise<T> {
  return db.transaction((tx) => work({
    query: <R extends object = Row>(text: string, values?: readonly unknown[]) => tx.query<R>(text, values),
    exec: (script) => tx.exec(script),
    record: async (changes) => {
      if (changes.length === 0) return
      const rows = changes.map((change) => ({
        action: change.before === null ? 'insert' : change.after === null ? 'delete' : 'update',
        table_name: change.table,
        row_key: change.key,
        before: change.before,
        after: change.after
      }))
      await tx.query(INSERT_AUDIT, [db.tenantId, actor.userId, actor.requestId, JSON.stringify(rows)])
    }
  }))
}
