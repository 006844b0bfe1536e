// The side of every (route, school) pair, as the matrix shows it. Deciding 1,500 schools x 10
// routes costs tens of milliseconds of CPU (more before the flag engine has seen a school), in
// the process that serves the public port, so it is never done while a page waits: a walk in
// slices of at most SLICE_MS, each followed by a yield to the event loop, refreshes the snapshot
// every REFRESH_MS while somebody has looked at the console in the last IDLE_MS, and pages
// render from the last complete snapshot (waiting for a fresh one when it is older than STALE_MS).
import type { Tenant } from '../tenants/tenant.ts'

export const SIDES = ['new', 'legacy', 'shadow', 'kill switch', 'breaker open'] as const
export type Side = typeof SIDES[number]

const SLICE_MS = 1
const REFRESH_MS = 2_000
const IDLE_MS = 60_000
/** Older than this, a snapshot is not shown: the page waits for a fresh one. */
const STALE_MS = 5_000

export interface Snapshot {
  readonly takenAt: number
  readonly schools: readonly Tenant[]
  /** Position of each school in `schools`. */
  readonly index: ReadonlyMap<string, number>
  /** Cohort name -> positions of its schools, by name; schools without one are under "(none)". */
  readonly cohorts: ReadonlyMap<string, readonly number[]>
  /** One array per route: the position in SIDES of each school's side. */
  readonly sides: readonly Uint8Array[]
  /** One array per route: match, mismatch and error counts of each school's shadow comparisons. */
  readonly shadow: readonly Uint32Array[]
}

export interface SchoolCell {
  readonly side: Side
  readonly shadow: { readonly match: number, readonly mismatch: number, readonly error: number } | undefined
}

export class SideSnapshot {
  readonly #routeCount: number
  readonly #schools: () => Iterable<Tenant>
  readonly #decide: (route: number, school: Tenant) => SchoolCell
  #latest: Snapshot | undefined
  #walking: Promise<Snapshot> | undefined
  #lastRead = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (routeCount: number, schools: () => Iterable<Tenant>, decide: (route: number, school: Tenant) => SchoolCell) {
    this.#routeCount = routeCount
    this.#schools = schools
    this.#decide = decide
    // The first walk meets schools the flag engine has not decided yet, the slowest case: done
    // once at start, so that the first page does not wait for it.
    setTimeout(() => { if (!this.#closed) this.#walk().catch(() => {}) }, 0).unref()
  }

  /** The last complete snapshot (waiting for the first one), and keeps them coming for a while. */
  async current (): Promise<Snapshot> {
    this.#lastRead = Date.now()
    if (this.#timer === undefined && !this.#closed) this.#schedule(0)
    const latest = this.#latest
    if (latest !== undefined && Date.now() - latest.takenAt <= STALE_MS) return latest
    return await (this.#walking ?? this.#walk())
  }

  /** A fresh snapshot, whatever the age of the last one. */
  async refresh (): Promise<Snapshot> {
    return await (this.#walking ?? this.#walk())
  }

  close (): void {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }

  #schedule (delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#closed || Date.now() - this.#lastRead > IDLE_MS) return
      void (this.#walking ?? this.#walk()).finally(() => this.#schedule(REFRESH_MS))
    }, delayMs)
    this.#timer.unref()
  }

  #walk (): Promise<Snapshot> {
    const walking = this.#take().finally(() => { this.#walking = undefined })
    this.#walking = walking
    return walking
  }

  async #take (): Promise<Snapshot> {
    const schools = [...this.#schools()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const index = new Map(schools.map((school, i) => [school.id, i]))
    const cohortLists = new Map<string, number[]>()
    schools.forEach((school, i) => {
      for (const cohort of school.cohorts.length === 0 ? ['(none)'] : school.cohorts) {
        let list = cohortLists.get(cohort)
        if (list === undefined) cohortLists.set(cohort, list = [])
        list.push(i)
      }
    })
    const cohorts = new Map([...cohortLists].sort(([a], [b]) => a.localeCompare(b)))
    const sides = Array.from({ length: this.#routeCount }, () => new Uint8Array(schools.length))
    const shadow = Array.from({ length: this.#routeCount }, () => new Uint32Array(schools.length * 3))
    let sliceStart = performance.now()
    for (let s = 0; s < schools.length; s++) {
      const school = schools[s] as Tenant
      for (let r = 0; r < this.#routeCount; r++) {
        const cell = this.#decide(r, school)
        ;(sides[r] as Uint8Array)[s] = SIDES.indexOf(cell.side)
        if (cell.shadow !== undefined) (shadow[r] as Uint32Array).set([cell.shadow.match, cell.shadow.mismatch, cell.shadow.error], s * 3)
      }
      if (performance.now() - sliceStart >= SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve))
        sliceStart = performance.now()
      }
    }
    const snapshot = { takenAt: Date.now(), schools, index, cohorts, sides, shadow }
    this.#latest = snapshot
    return snapshot
  }
}
