// Changes planned for later ("move wave-2 at 18:00"): each remembers the flag state it was planned
// from, and is applied at its time only if the flag is still there; otherwise it is skipped and
// the reason is shown. One applier at a time: in embedded mode the one process, with a control
// database whoever holds a PostgreSQL advisory lock for the tick (see pg-console.ts).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import type { Move } from './migration.ts'

export type ScheduleStatus = 'pending' | 'applied' | 'skipped' | 'cancelled'

export interface ScheduledChange {
  readonly id: string
  readonly createdAt: string
  readonly dueAt: string
  readonly who: string
  readonly route: string
  readonly flag: string
  readonly what: string
  readonly move: Move
  readonly fromVersion: string
  readonly overrideReason?: string
  readonly status: ScheduleStatus
  readonly outcome?: string
  readonly changeId?: string
}

export type NewScheduledChange = Omit<ScheduledChange, 'id' | 'createdAt' | 'status' | 'outcome' | 'changeId'>

export interface Schedule {
  add (change: NewScheduledChange): Promise<ScheduledChange>
  list (limit?: number): Promise<ScheduledChange[]>
  cancel (id: string): Promise<boolean>
  /**
   * Runs `apply` on every pending change due by `now`, as the only applier (false: another
   * replica is applying this tick), and records what each returned.
   */
  applyDue (now: Date, apply: (change: ScheduledChange) => Promise<{ status: 'applied' | 'skipped', outcome: string, changeId?: string }>): Promise<boolean>
}

/** Embedded mode: a JSON file, rewritten whole through a temporary file. */
export class FileSchedule implements Schedule {
  readonly #path: string
  #applying = false

  constructor (path: string) {
    this.#path = path
  }

  async add (change: NewScheduledChange): Promise<ScheduledChange> {
    const full: ScheduledChange = { id: randomUUID(), createdAt: new Date().toISOString(), status: 'pending', ...change }
    this.#save([...this.#load(), full])
    return full
  }

  async list (limit = 200): Promise<ScheduledChange[]> {
    return this.#load().sort((a, b) => b.dueAt.localeCompare(a.dueAt)).slice(0, limit)
  }

  async cancel (id: string): Promise<boolean> {
    const all = this.#load()
    const found = all.find((change) => change.id === id && change.status === 'pending')
    if (found === undefined) return false
    this.#save(all.map((change) => change === found ? { ...change, status: 'cancelled', outcome: 'cancelled' } : change))
    return true
  }

  async applyDue (now: Date, apply: Parameters<Schedule['applyDue']>[1]): Promise<boolean> {
    if (this.#applying) return false
    this.#applying = true
    try {
      for (const change of this.#load().filter((c) => c.status === 'pending' && Date.parse(c.dueAt) <= now.getTime())) {
        const result = await apply(change)
        this.#save(this.#load().map((c) => c.id === change.id ? { ...c, ...result } : c))
      }
      return true
    } finally {
      this.#applying = false
    }
  }

  #load (): ScheduledChange[] {
    if (!existsSync(this.#path)) return []
    return JSON.parse(readFileSync(this.#path, 'utf8')) as ScheduledChange[]
  }

  #save (all: readonly ScheduledChange[]): void {
    const temporary = `${this.#path}.${process.pid}.tmp`
    writeFileSync(temporary, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 })
    renameSync(temporary, this.#path)
  }
}
