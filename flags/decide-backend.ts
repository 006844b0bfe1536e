// The routing decision of a migrated route, kept pure so it can be tested without a server.
import type { FlagContext } from './flag-context.ts'
import type { Flags, FlagReader } from './flags.ts'
import type { Explanation } from './explain.ts'
import type { WhenFlagMissing } from './flag-keeper.ts'

export type Backend = 'new' | 'legacy'

export interface GuardedRoute {
  /** Moves the route to the new handler when on. */
  readonly flag: string
  /** An Unleash kill-switch flag of this route alone: when on, the route stays on legacy. */
  readonly killSwitch?: string
  /** The side when `flag` is truly gone from the source; default keep-last (see flag-keeper.ts). */
  readonly whenFlagMissing?: WhenFlagMissing
}

/**
 * Kill switches win over route flags: `globalKillSwitch` (config) covers every migrated route,
 * `route.killSwitch` one route. Kill-switch flags follow Unleash's convention: on = killed.
 */
export function decideBackend (flags: FlagReader, route: GuardedRoute, context: FlagContext, globalKillSwitch?: string): Backend {
  if (globalKillSwitch !== undefined && flags.isEnabled(globalKillSwitch, context)) return 'legacy'
  if (route.killSwitch !== undefined && flags.isEnabled(route.killSwitch, context)) return 'legacy'
  const whenMissing = route.whenFlagMissing
  if (whenMissing !== undefined && whenMissing !== 'keep-last' && flags.isGone(route.flag)) return whenMissing
  return flags.isEnabled(route.flag, context) ? 'new' : 'legacy'
}

export interface DecisionExplanation {
  readonly backend: Backend
  readonly flag: string
  readonly reason: string
  readonly detail: Explanation
}

/** The same decision as decideBackend, with the reason an engineer needs before and after a flip. */
export function explainDecision (flags: Flags, route: GuardedRoute, context: FlagContext, globalKillSwitch?: string): DecisionExplanation {
  for (const killSwitch of [globalKillSwitch, route.killSwitch]) {
    if (killSwitch === undefined) continue
    const detail = flags.explain(killSwitch, context)
    if (detail.enabled) return { backend: 'legacy', flag: killSwitch, reason: `kill switch ${killSwitch} is on: ${detail.reason}`, detail }
  }
  const whenMissing = route.whenFlagMissing
  if (whenMissing !== undefined && whenMissing !== 'keep-last' && flags.isGone(route.flag)) {
    const detail = { enabled: whenMissing === 'new', reason: `flag ${route.flag} is gone from ${flags.source}` }
    return { backend: whenMissing, flag: route.flag, reason: `flag is gone from the flag source: the route declares whenFlagMissing '${whenMissing}'`, detail }
  }
  const detail = flags.explain(route.flag, context)
  return { backend: detail.enabled ? 'new' : 'legacy', flag: route.flag, reason: detail.reason, detail }
}
