// Who did what: every change the console saves, with its before and after, so that the history
// can be shown per route and per school and any change reverted. Kept in the control database
// (table console_changes) or, in embedded mode, as JSON lines in a file.
import { appendFileSync, closeSync, existsSync, openSync, readSync, statSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import type { FlagState } from './flag-store.ts'

export interface Change {
  readonly id: string
  readonly at: string
  readonly who: string
  /** The route the change was made from, and the flag it changed. */
  readonly route: string
  readonly flag: string
  /** In words: "school-b to new", "kill switch pulled", "revert of ...". */
  readonly what: string
  readonly before: FlagState
  readonly after: FlagState
  /** Schools whose side changed. */
  readonly schools: readonly string[]
  /** Given to save a move towards new inside a freeze window. */
  readonly overrideReason?: string
  readonly revertOf?: string
  /** Set on a change applied from the schedule. */
  readonly scheduledBy?: string
}

export type NewChange = Omit<Change, 'id' | 'at'>

export interface ChangeLog {
  readonly description: string
  record (change: NewChange): Promise<Change>
  /** Newest first. */
  list (filter?: { route?: string, school?: string, flag?: string, limit?: number }): Promise<Change[]>
  get (id: string): Promise<Change | undefined>
}

export class FileChangeLog implements ChangeLog {
  readonly description: string
  readonly #path: string
  #read: { bytes: number, changes: readonly Change[] } = { bytes: 0, changes: [] }

  constructor (path: string) {
    this.#path = path
    this.description = `file ${path}`
  }

  async record (change: NewChange): Promise<Change> {
    const full: Change = { id: randomUUID(), at: new Date().toISOString(), ...change }
    appendFileSync(this.#path, JSON.stringify(full) + '\n', { mode: 0o600 })
    return full
  }

  async list (filter: { route?: string, school?: string, flag?: string, limit?: number } = {}): Promise<Change[]> {
    const all = this.#all().filter((change) =>
      (filter.route === undefined || change.route === filter.route) &&
      (filter.flag === undefined || change.flag === filter.flag) &&
      (filter.school === undefined || change.schools.includes(filter.school)))
    return all.reverse().slice(0, filter.limit ?? 200)
  }

  async get (id: string): Promise<Change | undefined> {
    return this.#all().find((change) => change.id === id)
  }

  // Every console page with a history reads it: parsing the whole file each time would grow with
  // it on the thread that serves the public port. The file only grows (other processes append to
  // it too), so only what was appended since the last read is parsed; a shorter file starts over.
  #all (): readonly Change[] {
    if (!existsSync(this.#path)) return []
    const size = statSync(this.#path).size
    if (size < this.#read.bytes) this.#read = { bytes: 0, changes: [] }
    if (size > this.#read.bytes) {
      const tail = Buffer.alloc(size - this.#read.bytes)
      const fd = openSync(this.#path, 'r')
      try {
        readSync(fd, tail, 0, tail.length, this.#read.bytes)
      } finally {
        closeSync(fd)
      }
      // A line still being appended is left for the next read.
      const complete = tail.lastIndexOf(0x0a) + 1
      const added = tail.subarray(0, complete).toString('utf8').split('\n').filter((line) => line.trim() !== '').flatMap((line) => {
        try { return [JSON.parse(line) as Change] } catch { return [] }
      })
      this.#read = { bytes: this.#read.bytes + complete, changes: [...this.#read.changes, ...added] }
    }
    return this.#read.changes
  }
}
