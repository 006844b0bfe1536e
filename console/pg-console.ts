// The console's change log and schedule in the control database (migrations/control/002_console.sql).
// Scheduled changes are applied by one replica at a time: each tick runs in a transaction that
// first takes a transaction-level advisory lock (what PgBouncer's transaction mode allows), and a
// replica that does not get it leaves the tick to the one that did.
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import type { FlagState } from './flag-store.ts'
import type { Change, ChangeLog, NewChange } from './history.ts'
import type { Move } from './migration.ts'
import type { NewScheduledChange, Schedule, ScheduledChange, ScheduleStatus } from './schedule.ts'

/** The advisory lock of the console's schedule ("ficus" + "sched" in ASCII, as one number). */
export const SCHEDULE_LOCK_KEY = '7308895152553'

export function controlPool (url: string): pg.Pool {
  return new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000 })
}

interface ChangeRow {
  id: string, at: Date, who: string, route: string, flag: string, what: string, before: FlagState, after: FlagState,
  schools: string[], override_reason: string | null, revert_of: string | null, scheduled_by: string | null
}

function toChange (row: ChangeRow): Change {
  return {
    id: row.id, at: row.at.toISOString(), who: row.who, route: row.route, flag: row.flag, what: row.what, before: row.before, after: row.after, schools: row.schools,
    ...(row.override_reason === null ? {} : { overrideReason: row.override_reason }),
    ...(row.revert_of === null ? {} : { revertOf: row.revert_of }),
    ...(row.scheduled_by === null ? {} : { scheduledBy: row.scheduled_by })
  }
}

export class PgChangeLog implements ChangeLog {
  readonly description = 'the control database (console_changes)'
  readonly #pool: pg.Pool

  constructor (pool: pg.Pool) {
    this.#pool = pool
  }

  async record (change: NewChange): Promise<Change> {
    const { rows } = await this.#pool.query<ChangeRow>(
      `INSERT INTO console_changes (id, who, route, flag, what, before, after, schools, override_reason, revert_of, scheduled_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [randomUUID(), change.who, change.route, change.flag, change.what, JSON.stringify(change.before), JSON.stringify(change.after), [...change.schools],
        change.overrideReason ?? null, change.revertOf ?? null, change.scheduledBy ?? null])
    return toChange(rows[0] as ChangeRow)
  }

  async list (filter: { route?: string, school?: string, flag?: string, limit?: number } = {}): Promise<Change[]> {
    const { rows } = await this.#pool.query<ChangeRow>(
      `SELECT * FROM console_changes
       WHERE ($1::text IS NULL OR route = $1) AND ($2::text IS NULL OR $2 = ANY (schools)) AND ($3::text IS NULL OR flag = $3)
       ORDER BY at DESC, id LIMIT $4`,
      [filter.route ?? null, filter.school ?? null, filter.flag ?? null, filter.limit ?? 200])
    return rows.map(toChange)
  }

  async get (id: string): Promise<Change | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined
    const { rows } = await this.#pool.query<ChangeRow>('SELECT * FROM console_changes WHERE id = $1', [id])
    return rows[0] === undefined ? undefined : toChange(rows[0])
  }
}

interface ScheduleRow {
  id: string, created_at: Date, due_at: Date, who: string, route: string, flag: string, what: string, move: Move, from_version: string,
  override_reason: string | null, status: ScheduleStatus, outcome: string | null, change_id: string | null
}

function toScheduled (row: ScheduleRow): ScheduledChange {
  return {
    id: row.id, createdAt: row.created_at.toISOString(), dueAt: row.due_at.toISOString(), who: row.who, route: row.route, flag: row.flag, what: row.what,
    move: row.move, fromVersion: row.from_version, status: row.status,
    ...(row.override_reason === null ? {} : { overrideReason: row.override_reason }),
    ...(row.outcome === null ? {} : { outcome: row.outcome }),
    ...(row.change_id === null ? {} : { changeId: row.change_id })
  }
}

export class PgSchedule implements Schedule {
  readonly #pool: pg.Pool

  constructor (pool: pg.Pool) {
    this.#pool = pool
  }

  async add (change: NewScheduledChange): Promise<ScheduledChange> {
    const { rows } = await this.#pool.query<ScheduleRow>(
      `INSERT INTO console_schedule (id, due_at, who, route, flag, what, move, from_version, override_reason)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [randomUUID(), change.dueAt, change.who, change.route, change.flag, change.what, JSON.stringify(change.move), change.fromVersion, change.overrideReason ?? null])
    return toScheduled(rows[0] as ScheduleRow)
  }

  async list (limit = 200): Promise<ScheduledChange[]> {
    const { rows } = await this.#pool.query<ScheduleRow>('SELECT * FROM console_schedule ORDER BY due_at DESC LIMIT $1', [limit])
    return rows.map(toScheduled)
  }

  async cancel (id: string): Promise<boolean> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return false
    const { rowCount } = await this.#pool.query("UPDATE console_schedule SET status = 'cancelled', outcome = 'cancelled', settled_at = now() WHERE id = $1 AND status = 'pending'", [id])
    return rowCount === 1
  }

  /** One due change per transaction, each under the lock, so an outcome is kept as soon as it is known. */
  async applyDue (now: Date, apply: Parameters<Schedule['applyDue']>[1]): Promise<boolean> {
    const client = await this.#pool.connect()
    try {
      for (;;) {
        await client.query('BEGIN')
        const { rows: [lock] } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [SCHEDULE_LOCK_KEY])
        if (lock?.locked !== true) {
          await client.query('ROLLBACK')
          return false
        }
        const { rows: [row] } = await client.query<ScheduleRow>("SELECT * FROM console_schedule WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT 1 FOR UPDATE", [now])
        if (row === undefined) {
          await client.query('COMMIT')
          return true
        }
        const result = await apply(toScheduled(row))
        await client.query('UPDATE console_schedule SET status = $2, outcome = $3, change_id = $4, settled_at = now() WHERE id = $1', [row.id, result.status, result.outcome, result.changeId ?? null])
        await client.query('COMMIT')
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }
}
