// What the console knows and does, without HTTP: the matrix of routes x schools with its
// evidence, one cell explained, the preview of a move (computed by the engine that serves
// traffic) and saving it, with freeze windows and the change log. Reads are from memory (flags,
// breakers, shadow counts, metrics); the matrix is built, a preview's schools decided and every
// page rendered by the page worker (console-pages.ts), so that they cost the public port's
// thread next to nothing. Only saves touch the flag store and the log.
import { explainDecision, type DecisionExplanation } from '../flags/decide-backend.ts'
import type { FlagReader, Flags } from '../flags/flags.ts'
import type { FicusMetrics } from '../metrics/registry.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { BreakerState } from '../core/safety-events.ts'
import type { RouteGuard } from '../safety/safety-net.ts'
import type { ShadowCounts, ShadowMismatch } from '../safety/shadow.ts'
import type { Tenant } from '../tenants/tenant.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import { ConsoleErrors } from './errors.ts'
import { activeFreeze, type FreezeWindow } from './freeze.ts'
import { versionOf, type FlagState, type FlagStore, type StoredFlag } from './flag-store.ts'
import type { Change, ChangeLog } from './history.ts'
import { killSwitchState, moveToLegacy, moveToNew, switchFlag, type Target } from './moves.ts'
import { RecentRequests } from './recent-requests.ts'
import { WhatIfFlags } from './what-if.ts'
import { flagSide, plainRoute, withBreaker, type PlainRoute, type Side } from './side.ts'
import { ConsolePages } from './console-pages.ts'
import type { SideChangesQuestion } from './side-changes.ts'
import type { Schedule, ScheduledChange } from './schedule.ts'
import { FicusError } from '../errors/index.ts'

export type { Side }
const DAY_MS = 24 * 60 * 60 * 1000
// The newest ones; /shadow/mismatches on the admin listener lists all that are kept.
const CELL_MISMATCHES = 5

export interface ConsoleParts {
  readonly routes: readonly MigratedRoute[]
  readonly registry: TenantRegistry
  readonly flags: Flags
  readonly killSwitchFlag: string | undefined
  readonly guards: readonly RouteGuard[]
  readonly metrics: FicusMetrics | undefined
  readonly store: FlagStore
  readonly log: ChangeLog
  readonly freezeWindows: readonly FreezeWindow[]
  readonly schedule: Schedule
  /** False in all but one process sharing a schedule file (WORKERS > 1 without a control database). */
  readonly appliesSchedule?: boolean
  readonly logger?: { info (obj: object, msg: string): void, warn (obj: object, msg: string): void }
  readonly now?: () => Date
}

/** How often due scheduled changes are looked for. */
const SCHEDULE_TICK_MS = 1_000

export type Action = 'new' | 'legacy' | 'shadow-on' | 'shadow-off' | 'kill' | 'release'

export interface Move {
  readonly route: string
  readonly action: Action
  /** For new, legacy, shadow-on and shadow-off. */
  readonly target?: { kind: 'schools', ids: readonly string[] } | { kind: 'cohort', cohort: string } | { kind: 'percentage', percent: number }
}

export interface Preview {
  readonly move: Move
  readonly flag: string
  readonly what: string
  readonly before: FlagState
  readonly after: FlagState
  readonly version: string
  readonly toNew: readonly string[]
  readonly toLegacy: readonly string[]
  readonly shadowOn: readonly string[]
  readonly shadowOff: readonly string[]
  /** Moved schools with a kept shadow mismatch of this route in the last 24 h. */
  readonly recentMismatch: readonly string[]
  readonly openBreaker: readonly string[]
  /** Other routes the same flag guards: they move too. */
  readonly alsoRoutes: readonly string[]
  readonly freeze: FreezeWindow | undefined
  /** True when saving needs an override reason (a move towards new inside a freeze window). */
  readonly needsOverride: boolean
  readonly unchanged: boolean
}

export class MigrationConsole {
  readonly #parts: ConsoleParts
  readonly #guards: ReadonlyMap<string, RouteGuard>
  readonly recent: RecentRequests
  /** Builds and renders the pages in the page worker. */
  readonly pages: ConsolePages
  readonly #now: () => Date
  readonly #scheduleTimer: NodeJS.Timeout
  #ticking = false
  #sorted: { readonly version: number, readonly schools: readonly Tenant[] } | undefined

  constructor (parts: ConsoleParts) {
    this.#parts = parts
    this.#guards = new Map(parts.guards.map((guard) => [guard.name, guard]))
    this.recent = new RecentRequests(parts.metrics, parts.routes.map((route) => route.name))
    this.#now = parts.now ?? (() => new Date())
    this.pages = new ConsolePages({
      setup: {
        routes: parts.routes.map((route) => this.plainRoute(route)),
        killSwitchFlag: parts.killSwitchFlag,
        store: parts.store.description
      },
      guards: parts.routes.map((route) => this.#guards.get(route.name)),
      flags: parts.flags,
      registry: parts.registry,
      recent: this.recent
    })
    // The first decision of every side is the slowest (flags not seen yet): done at start, in
    // the worker, so that the first page does not wait for it.
    setTimeout(() => this.pages.prime(), 0).unref()
    this.#scheduleTimer = setInterval(() => { if (parts.appliesSchedule ?? true) void this.applyDue() }, SCHEDULE_TICK_MS)
    this.#scheduleTimer.unref()
  }

  close (): void {
    this.recent.close()
    this.pages.close()
    clearInterval(this.#scheduleTimer)
  }

  /** Plans a previewed move for `dueAt`, from the flag state the preview was computed on. */
  async scheduleMove (preview: Preview, who: string, dueAt: Date, overrideReason: string | undefined): Promise<ScheduledChange> {
    if (Number.isNaN(dueAt.getTime()) || dueAt.getTime() <= this.#now().getTime()) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('a scheduled change needs a time in the future')
    return await this.#parts.schedule.add({
      dueAt: dueAt.toISOString(), who, route: preview.move.route, flag: preview.flag, what: preview.what, move: preview.move, fromVersion: preview.version,
      ...(overrideReason === undefined || overrideReason.trim() === '' ? {} : { overrideReason: overrideReason.trim() })
    })
  }

  async scheduled (): Promise<ScheduledChange[]> {
    return await this.#parts.schedule.list()
  }

  async cancelScheduled (id: string): Promise<boolean> {
    return await this.#parts.schedule.cancel(id)
  }

  /**
   * Applies the scheduled changes that are due, if this process is the applier this tick. A change
   * whose flag moved since it was planned is skipped, as is one refused now (a freeze window it
   * has no override for): both are reported on the schedule and in the log.
   */
  async applyDue (): Promise<void> {
    if (this.#ticking) return
    this.#ticking = true
    try {
      await this.#parts.schedule.applyDue(this.#now(), async (change) => {
        let preview: Preview
        try {
          preview = await this.preview(change.move)
        } catch (error) {
          return this.#skipped(change, error instanceof FicusError ? error.message : 'the move can no longer be previewed')
        }
        if (preview.version !== change.fromVersion) return this.#skipped(change, `not applied: ${preview.flag} changed since this was scheduled`)
        try {
          const saved = await this.save(preview, change.who, change.overrideReason, { scheduledBy: change.id })
          this.#parts.logger?.info({ scheduled: change.id, change: saved.id, route: change.route, what: change.what }, 'scheduled console change applied')
          return { status: 'applied', outcome: `applied: ${saved.schools.length} school(s) changed side`, changeId: saved.id }
        } catch (error) {
          return this.#skipped(change, `not applied: ${error instanceof FicusError ? error.message : 'the flag store did not take it'}`)
        }
      })
    } catch (error) {
      this.#parts.logger?.warn({ err: (error as Error).message }, 'scheduled console changes could not be checked')
    } finally {
      this.#ticking = false
    }
  }

  #skipped (change: ScheduledChange, outcome: string): { status: 'skipped', outcome: string } {
    this.#parts.logger?.warn({ scheduled: change.id, route: change.route, what: change.what, outcome }, 'scheduled console change skipped')
    return { status: 'skipped', outcome }
  }

  get routes (): readonly MigratedRoute[] {
    return this.#parts.routes
  }

  route (name: string): MigratedRoute | undefined {
    return this.#parts.routes.find((route) => route.name === name)
  }

  school (id: string): Tenant | undefined {
    return this.#parts.registry.get(id)
  }

  /** Every school, by id; sorted again only when the registry's snapshot moves. */
  schools (): readonly Tenant[] {
    const registry = this.#parts.registry
    if (this.#sorted?.version !== registry.version) this.#sorted = { version: registry.version, schools: [...registry.all()].sort((a, b) => a.id.localeCompare(b.id)) }
    return this.#sorted.schools
  }

  /** Cohorts with their schools, by name; schools without a cohort are under "(none)". */
  cohorts (): Map<string, Tenant[]> {
    const cohorts = new Map<string, Tenant[]>()
    for (const school of this.schools()) {
      for (const cohort of school.cohorts.length === 0 ? ['(none)'] : school.cohorts) {
        let list = cohorts.get(cohort)
        if (list === undefined) cohorts.set(cohort, list = [])
        list.push(school)
      }
    }
    return new Map([...cohorts].sort(([a], [b]) => a.localeCompare(b)))
  }

  freezeNow (): FreezeWindow | undefined {
    return activeFreeze(this.#parts.freezeWindows, this.#now())
  }

  /** The side of one route for one school, as the edge decides it now. */
  side (route: MigratedRoute, school: Tenant, flags: FlagReader = this.#parts.flags): Side {
    return withBreaker(flagSide(flags, this.plainRoute(route), school, this.#parts.killSwitchFlag), this.#guards.get(route.name)?.breaker.state(school.id) ?? 'closed')
  }

  /** The route with its shadow flag, without its handler. */
  plainRoute (route: MigratedRoute): PlainRoute {
    return plainRoute(route, this.#guards.get(route.name)?.shadowRoute.flag)
  }

  /** A cell opened: why, the last mismatches, the breaker, the history. */
  async cell (route: MigratedRoute, school: Tenant): Promise<{ decision: DecisionExplanation, side: Side, shadowFlag: string | undefined, shadow: ShadowCounts | undefined, mismatches: ShadowMismatch[], breaker: BreakerState, history: Change[] }> {
    const guard = this.#guards.get(route.name)
    const context = { tenantId: school.id, cohorts: school.cohorts, route: route.name }
    return {
      decision: explainDecision(this.#parts.flags, route, context, this.#parts.killSwitchFlag),
      side: this.side(route, school),
      shadowFlag: guard?.shadowRoute.flag,
      shadow: guard?.shadow.countsOf(school.id),
      mismatches: (guard?.shadow.mismatches() ?? []).filter((mismatch) => mismatch.tenant === school.id).slice(0, CELL_MISMATCHES),
      breaker: guard?.breaker.state(school.id) ?? 'closed',
      history: (await this.#parts.log.list({ school: school.id })).filter((change) => this.#flagsOf(route).includes(change.flag))
    }
  }

  async history (filter: { route?: string, school?: string }): Promise<Change[]> {
    if (filter.route !== undefined) {
      const route = this.route(filter.route)
      if (route === undefined) return []
      const flags = this.#flagsOf(route)
      return (await this.#parts.log.list({ school: filter.school, limit: 1_000 })).filter((change) => flags.includes(change.flag)).slice(0, 200)
    }
    return await this.#parts.log.list(filter)
  }

  async change (id: string): Promise<Change | undefined> {
    return await this.#parts.log.get(id)
  }

  #flagsOf (route: MigratedRoute): string[] {
    const guard = this.#guards.get(route.name)
    return [route.flag, ...(guard === undefined ? [] : [guard.shadowRoute.flag]), ...(route.killSwitch === undefined ? [] : [route.killSwitch])]
  }

  /** The preview of a move: what the flag becomes and which schools change side, before any save. */
  async preview (move: Move): Promise<Preview> {
    const route = this.route(move.route)
    if (route === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`no migrated route named "${move.route}"`)
    const guard = this.#guards.get(route.name)
    const flag = this.#flagFor(route, move.action, guard)
    const stored = await this.#read(flag)
    const after = this.#apply(route, flag, stored.state, move)
    const limit = this.#parts.store.maxConstraintValues
    const longest = Math.max(0, ...after.strategies.flatMap((strategy) => (strategy.constraints ?? []).map((c) => c.values?.length ?? 0)))
    if (limit !== undefined && longest > limit) {
      throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`this would put ${longest} schools in one list, and ${this.#parts.store.description} takes at most ${limit} values per constraint: move them as a cohort, or by percentage`)
    }
    return await this.#previewOf(route, move, flag, stored.state, after, stored.version, describe(move))
  }

  /** The preview of putting a change's "before" back, valid only while the flag is still at its "after". */
  async previewRevert (change: Change, route: MigratedRoute): Promise<Preview> {
    const stored = await this.#read(change.flag)
    const preview = await this.#previewOf(route, { route: route.name, action: 'legacy' }, change.flag, stored.state, change.before, stored.version, `revert of "${change.what}" (${change.at} by ${change.who})`)
    return { ...preview, unchanged: preview.unchanged }
  }

  /**
   * Saves a previewed move. Refused when the flag moved on since the preview (`version`), or when a
   * move towards new falls in a freeze window without an override reason.
   */
  async save (preview: Preview, who: string, overrideReason: string | undefined, extra: { revertOf?: string, scheduledBy?: string } = {}): Promise<Change> {
    // Freeze windows are judged when saving, not when previewing.
    const freeze = this.freezeNow()
    if (preview.toNew.length > 0 && freeze !== undefined && (overrideReason === undefined || overrideReason.trim() === '')) {
      throw ConsoleErrors.FICUS_ERR_CONSOLE_FROZEN(`"${freeze.text}" is on and this moves ${preview.toNew.length} school(s) to new`)
    }
    const route = this.route(preview.move.route) as MigratedRoute
    const kind = route.killSwitch === preview.flag || this.#parts.killSwitchFlag === preview.flag ? 'kill-switch' : 'release'
    let written: boolean
    try {
      written = await this.#parts.store.write(preview.flag, preview.after, preview.version, kind)
    } catch (error) {
      throw ConsoleErrors.FICUS_ERR_CONSOLE_FLAG_STORE((error as Error).message, { cause: error })
    }
    if (!written) throw ConsoleErrors.FICUS_ERR_CONSOLE_STALE(`${preview.flag} was changed by someone else`)
    return await this.#parts.log.record({
      who,
      route: route.name,
      flag: preview.flag,
      what: preview.what,
      before: preview.before,
      after: preview.after,
      schools: [...new Set([...preview.toNew, ...preview.toLegacy, ...preview.shadowOn, ...preview.shadowOff])],
      ...(freeze !== undefined && overrideReason !== undefined && overrideReason.trim() !== '' ? { overrideReason: overrideReason.trim() } : {}),
      ...extra
    })
  }

  async #read (flag: string): Promise<StoredFlag> {
    try {
      return await this.#parts.store.read(flag)
    } catch (error) {
      throw ConsoleErrors.FICUS_ERR_CONSOLE_FLAG_STORE((error as Error).message, { cause: error })
    }
  }

  #flagFor (route: MigratedRoute, action: Action, guard: RouteGuard | undefined): string {
    if (action === 'shadow-on' || action === 'shadow-off') {
      if (guard === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`${route.name} has no shadow`)
      return guard.shadowRoute.flag
    }
    if ((action === 'kill' || action === 'release') && route.killSwitch !== undefined) return route.killSwitch
    return route.flag
  }

  #apply (route: MigratedRoute, flag: string, current: FlagState, move: Move): FlagState {
    if (move.action === 'kill') return route.killSwitch === flag ? killSwitchState(true) : switchFlag(current, false)
    if (move.action === 'release') return route.killSwitch === flag ? killSwitchState(false) : switchFlag(current, true)
    const target = this.#target(move)
    const towardsOn = move.action === 'new' || move.action === 'shadow-on'
    if (towardsOn) return moveToNew(flag, current, target)
    const isOn = (state: FlagState, ids: readonly string[]): string[] => {
      const flags = new WhatIfFlags(this.#parts.flags, new Map([[flag, state]]))
      return ids.filter((id) => {
        const school = this.school(id)
        return school !== undefined && flags.isEnabled(flag, { tenantId: school.id, cohorts: school.cohorts, route: route.name })
      })
    }
    return moveToLegacy(flag, current, target, isOn)
  }

  #target (move: Move): Target {
    const target = move.target
    if (target === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('say which schools: a list, a cohort or a percentage')
    if (target.kind === 'percentage') {
      if (!Number.isInteger(target.percent) || target.percent < 0 || target.percent > 100) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('a percentage is a whole number from 0 to 100')
      return target
    }
    if (target.kind === 'cohort') {
      const schools = this.cohorts().get(target.cohort)
      if (schools === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`no cohort named "${target.cohort}"`)
      return { kind: 'cohort', cohort: target.cohort, ids: schools.map((school) => school.id) }
    }
    const unknown = target.ids.filter((id) => this.school(id) === undefined)
    if (target.ids.length === 0) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('name at least one school')
    if (unknown.length > 0) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`not in the registry: ${unknown.slice(0, 10).join(', ')}`)
    return { kind: 'schools', ids: [...new Set(target.ids)] }
  }

  async #previewOf (route: MigratedRoute, move: Move, flag: string, before: FlagState, after: FlagState, version: string, what: string): Promise<Preview> {
    const guard = this.#guards.get(route.name)
    const shadowRoute = guard !== undefined && flag === guard.shadowRoute.flag ? guard.shadowRoute : undefined
    // Before: the stored state, which may be a poll ahead of what the engine serves this second.
    const question: SideChangesQuestion = {
      route: this.plainRoute(route),
      shadowRoute,
      flag,
      before,
      after,
      killSwitchFlag: this.#parts.killSwitchFlag,
      gone: [route.flag, ...(shadowRoute === undefined ? [] : [shadowRoute.flag])].filter((name) => this.#parts.flags.isGone(name))
    }
    // In the page worker, always: deciding every school twice would hold up the public port for
    // a tenth of a second or more. A preview asked for while the worker starts waits for it.
    const { toNew, toLegacy, shadowOn, shadowOff } = await this.pages.sideChanges(question)
    const moved = new Set([...toNew, ...toLegacy, ...shadowOn, ...shadowOff])
    const since = this.#now().getTime() - DAY_MS
    const recentMismatch = [...new Set((guard?.shadow.mismatches() ?? []).filter((m) => moved.has(m.tenant) && Date.parse(m.at) >= since).map((m) => m.tenant))]
    const openBreaker = guard === undefined ? [] : [...moved].filter((id) => guard.breaker.state(id) !== 'closed')
    const freeze = this.freezeNow()
    return {
      move,
      flag,
      what,
      before,
      after,
      version,
      toNew,
      toLegacy,
      shadowOn,
      shadowOff,
      recentMismatch,
      openBreaker,
      alsoRoutes: this.#parts.routes.filter((other) => other !== route && (other.flag === flag || other.killSwitch === flag)).map((other) => other.name),
      freeze,
      needsOverride: freeze !== undefined && toNew.length > 0,
      unchanged: versionOf(before) === versionOf(after)
    }
  }
}

function describe (move: Move): string {
  const target = move.target
  const whom = target === undefined
    ? 'every school'
    : target.kind === 'schools' ? target.ids.join(', ') : target.kind === 'cohort' ? `cohort ${target.cohort}` : `${target.percent}% of schools`
  switch (move.action) {
    case 'new': return target?.kind === 'percentage' ? `${whom} to new (sticky by school)` : `${whom} to new`
    case 'legacy': return target?.kind === 'percentage' ? `share on new set to ${target.percent}%` : `${whom} back to legacy`
    case 'shadow-on': return `shadow on for ${whom}`
    case 'shadow-off': return `shadow off for ${whom}`
    case 'kill': return 'kill switch pulled: every school to legacy'
    case 'release': return 'kill switch released'
  }
}
