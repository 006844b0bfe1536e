// The matrix of routes x schools, built and rendered inside the page worker from copies of the
// evidence the main thread owns (flag definitions, schools, shadow counts, breakers, recent
// requests). Deciding every (route, school) side is the costly part, so it is done once per
// change of the flags or the schools (and, only while a strategy compares with the clock, every
// FLAG_SIDES_MAX_AGE_MS); breakers and counts are laid over it on every page.
import type { FlagDefinitions } from '../flags/flags.ts'
import type { BreakerState } from '../core/safety-events.ts'
import type { ShadowCounts } from '../safety/shadow.ts'
import type { Tenant } from '../tenants/tenant.ts'
import type { FreezeWindow } from './freeze.ts'
import { matrixPage, type MatrixColumn, type PageUser, type RouteInfo } from './pages.ts'
import type { CohortShares, RequestShare } from './recent-requests.ts'
import { flagSide, SIDES, type RouteFlags, type Side } from './side.ts'
import { SnapshotFlags } from './snapshot-flags.ts'

const PAGE_SIZE = 40
const SEARCH_LIMIT = 40
const FLAG_SIDES_MAX_AGE_MS = 10_000
const NEW = SIDES.indexOf('new')
const BREAKER_OPEN = SIDES.indexOf('breaker open')

/** A school as the matrix needs it: never its database URL. */
export type SchoolRow = Pick<Tenant, 'id' | 'name' | 'status' | 'cohorts'>

/** What of a school the pages and the worker see: never its database URL. */
export function schoolRow (school: SchoolRow): SchoolRow {
  return { id: school.id, name: school.name, status: school.status, cohorts: school.cohorts }
}

export interface MatrixSetup {
  readonly routes: ReadonlyArray<RouteInfo & RouteFlags>
  readonly killSwitchFlag: string | undefined
  readonly store: string
}

/** What changed since the last update; fields left out are as they were. */
export interface EvidenceUpdate {
  readonly takenAt: number
  readonly flags?: FlagDefinitions
  /** Every school, in the registry's order, which `shadow` follows too. */
  readonly schools?: readonly SchoolRow[]
  /** [route index, match, mismatch and error count of each school] for the routes whose counts moved. */
  readonly shadow?: ReadonlyArray<readonly [number, Uint32Array]>
  /** Per route: the schools whose breaker is not closed. */
  readonly breakers: ReadonlyArray<ReadonlyArray<readonly [string, BreakerState]>>
  /** Per route: requests of each cohort over the recent window; undefined without metrics. */
  readonly shares: ReadonlyArray<CohortShares | undefined>
}

export interface MatrixView {
  readonly user: PageUser
  readonly freeze: FreezeWindow | undefined
  readonly query: { readonly q?: string, readonly cohort?: string, readonly page?: string }
}

export interface CellEvidence {
  readonly side: Side
  readonly sides: Readonly<Record<Side, number>>
  readonly schools: number
  readonly shadow: ShadowCounts
  readonly requests: RequestShare | undefined
}

export class Matrix {
  readonly #setup: MatrixSetup
  #takenAt = 0
  #flags: SnapshotFlags | undefined
  /** Sorted by id; `#order[i]` is the position of the i-th school as the main thread sent them. */
  #schools: readonly SchoolRow[] = []
  #order = new Int32Array(0)
  #cohorts: ReadonlyMap<string, readonly number[]> = new Map()
  #flagSides: Uint8Array[] = []
  #flagSidesAt = 0
  #shadow: Uint32Array[]
  #breakers: Array<ReadonlyMap<string, BreakerState>>
  #shares: Array<{ readonly windowMs: number, readonly byCohort: ReadonlyMap<string, RequestShare> } | undefined>

  constructor (setup: MatrixSetup) {
    this.#setup = setup
    const count = setup.routes.length
    this.#shadow = Array.from({ length: count }, () => new Uint32Array(0))
    this.#breakers = Array.from({ length: count }, () => new Map())
    this.#shares = Array.from({ length: count }, () => undefined)
  }

  update (update: EvidenceUpdate): void {
    this.#takenAt = update.takenAt
    let decide = false
    if (update.flags !== undefined) {
      this.#flags = new SnapshotFlags(update.flags)
      decide = true
    }
    if (update.schools !== undefined) {
      this.#setSchools(update.schools)
      decide = true
    }
    for (const [route, counts] of update.shadow ?? []) {
      const sorted = new Uint32Array(this.#schools.length * 3)
      for (let i = 0; i < this.#order.length; i++) sorted.set(counts.subarray(i * 3, i * 3 + 3), (this.#order[i] as number) * 3)
      this.#shadow[route] = sorted
    }
    this.#breakers = update.breakers.map((entries) => new Map(entries))
    this.#shares = update.shares.map((shares) => shares === undefined ? undefined : { windowMs: shares.windowMs, byCohort: new Map(shares.byCohort) })
    if (decide || (this.#flags?.readsClock === true && update.takenAt - this.#flagSidesAt > FLAG_SIDES_MAX_AGE_MS)) this.#decide(update.takenAt)
  }

  /** The copy of the flags and the schools, for the other questions the worker answers. */
  get flags (): SnapshotFlags | undefined {
    return this.#flags
  }

  get schools (): readonly SchoolRow[] {
    return this.#schools
  }

  /** Milliseconds the last full decision of every side took (for the bench). */
  lastDecisionMs = 0
  /** How many times every side was decided. */
  decisions = 0

  render (view: MatrixView): string {
    if (this.#flags === undefined) throw new Error('no flags yet')
    const routes = this.#setup.routes
    const snapshot = this.#schools
    const cohorts = this.#cohorts
    const query = view.query
    const search = (query.q ?? '').trim().toLowerCase()
    const cohort = query.cohort !== undefined && cohorts.has(query.cohort) ? query.cohort : undefined
    let columns: MatrixColumn[]
    let page = 1
    let pages = 1
    const schoolColumns = (positions: readonly number[]): MatrixColumn[] => positions.map((position) => {
      const school = snapshot[position] as SchoolRow
      return {
        label: school.id,
        href: `/console/school?id=${encodeURIComponent(school.id)}`,
        cells: routes.map((route, r) => ({
          school: true,
          href: `/console/cell?route=${encodeURIComponent(route.name)}&school=${encodeURIComponent(school.id)}`,
          evidence: this.evidence(r, [position], undefined)
        }))
      }
    })
    if (search !== '') {
      const found: number[] = []
      for (let i = 0; i < snapshot.length && found.length < SEARCH_LIMIT; i++) {
        const school = snapshot[i] as SchoolRow
        if (school.id.includes(search) || school.name.toLowerCase().includes(search)) found.push(i)
      }
      columns = schoolColumns(found)
    } else if (cohort !== undefined) {
      const positions = cohorts.get(cohort) ?? []
      pages = Math.max(1, Math.ceil(positions.length / PAGE_SIZE))
      page = Math.min(Math.max(1, Number.parseInt(query.page ?? '1', 10) || 1), pages)
      columns = schoolColumns(positions.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE))
    } else {
      columns = [...cohorts].map(([name, positions]) => ({
        label: `${name} (${positions.length})`,
        href: `/console?cohort=${encodeURIComponent(name)}`,
        cells: routes.map((_route, r) => ({ school: false, href: `/console?cohort=${encodeURIComponent(name)}`, evidence: this.evidence(r, positions, name) }))
      }))
    }
    return matrixPage({
      user: view.user,
      freeze: view.freeze,
      routes,
      columns,
      cohorts: [...cohorts].map(([name, positions]) => ({ name, count: positions.length })),
      query: query.q ?? '',
      cohort,
      page,
      pages,
      schoolCount: snapshot.length,
      takenAt: this.#takenAt,
      store: this.#setup.store
    })
  }

  /** Evidence of a group of schools (a cohort, or one school) on one route. */
  evidence (routeIndex: number, positions: readonly number[], cohort: string | undefined): CellEvidence {
    const counts = [0, 0, 0, 0, 0]
    const shadow: ShadowCounts = { match: 0, mismatch: 0, error: 0 }
    const sides = this.#flagSides[routeIndex] as Uint8Array
    const compared = this.#shadow[routeIndex] as Uint32Array
    const breakers = this.#breakers[routeIndex] as ReadonlyMap<string, BreakerState>
    for (const position of positions) {
      let side = sides[position] as number
      if (side === NEW && breakers.size > 0 && breakers.has((this.#schools[position] as SchoolRow).id)) side = BREAKER_OPEN
      counts[side] = (counts[side] ?? 0) + 1
      if (compared.length === 0) continue
      shadow.match += compared[position * 3] as number
      shadow.mismatch += compared[position * 3 + 1] as number
      shadow.error += compared[position * 3 + 2] as number
    }
    let top = 1
    for (let i = 0; i < counts.length; i++) if ((counts[i] as number) > (counts[top] as number)) top = i
    const bySide = Object.fromEntries(SIDES.map((side, i) => [side, counts[i] as number])) as Record<Side, number>
    return { side: SIDES[top] as Side, sides: bySide, schools: positions.length, shadow, requests: cohort === undefined ? undefined : this.#share(routeIndex, cohort) }
  }

  #share (routeIndex: number, cohort: string): RequestShare | undefined {
    const shares = this.#shares[routeIndex]
    if (shares === undefined) return undefined
    // A cohort the metrics have no row for: none of its requests counted in the window.
    return shares.byCohort.get(cohort) ?? { total: 0, servedNew: 0, fallbacks: 0, errors: 0, windowMs: shares.windowMs }
  }

  #setSchools (schools: readonly SchoolRow[]): void {
    const order = schools.map((_school, i) => i).sort((a, b) => {
      const x = (schools[a] as SchoolRow).id
      const y = (schools[b] as SchoolRow).id
      return x < y ? -1 : x > y ? 1 : 0
    })
    this.#schools = order.map((i) => schools[i] as SchoolRow)
    this.#order = new Int32Array(schools.length)
    order.forEach((sent, position) => { this.#order[sent] = position })
    const cohortLists = new Map<string, number[]>()
    this.#schools.forEach((school, i) => {
      for (const cohort of school.cohorts.length === 0 ? ['(none)'] : school.cohorts) {
        let list = cohortLists.get(cohort)
        if (list === undefined) cohortLists.set(cohort, list = [])
        list.push(i)
      }
    })
    this.#cohorts = new Map([...cohortLists].sort(([a], [b]) => a.localeCompare(b)))
    // Counts follow the school order: until the main thread sends them again, none are known.
    this.#shadow = this.#shadow.map(() => new Uint32Array(0))
  }

  #decide (now: number): void {
    const flags = this.#flags
    if (flags === undefined) return
    const started = performance.now()
    const { routes, killSwitchFlag } = this.#setup
    this.#flagSides = routes.map((route) => {
      const sides = new Uint8Array(this.#schools.length)
      for (let s = 0; s < this.#schools.length; s++) sides[s] = SIDES.indexOf(flagSide(flags, route, this.#schools[s] as SchoolRow, killSwitchFlag))
      return sides
    })
    this.#flagSidesAt = now
    this.lastDecisionMs = performance.now() - started
    this.decisions++
  }
}
