// Which schools a proposed flag state moves: every school decided by the edge's decideBackend
// twice, with the flag as it is stored and as it would be (WhatIfFlags, unleash-client's engine),
// every other flag as the edge has it. 1,500 schools cost tens of milliseconds, so the page worker
// does it, over its copy of the flags.
import { decideBackend, type GuardedRoute } from '../flags/decide-backend.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { FlagState } from './flag-store.ts'
import type { SchoolRow } from './matrix.ts'
import { WhatIfFlags } from './what-if.ts'

export interface SideChangesQuestion {
  readonly route: GuardedRoute & { readonly name: string }
  /** Set when `flag` is the route's shadow flag. */
  readonly shadowRoute: GuardedRoute | undefined
  readonly flag: string
  readonly before: FlagState
  readonly after: FlagState
  readonly killSwitchFlag: string | undefined
  /** The flags the edge's Flags says are gone right now (whenFlagMissing). */
  readonly gone: readonly string[]
}

export interface SideChanges {
  readonly toNew: readonly string[]
  readonly toLegacy: readonly string[]
  readonly shadowOn: readonly string[]
  readonly shadowOff: readonly string[]
}

export function sideChanges (flags: FlagReader, schools: readonly SchoolRow[], question: SideChangesQuestion): SideChanges {
  const { route, shadowRoute, flag, killSwitchFlag } = question
  const gone = new Set(question.gone)
  const live: FlagReader = { isReady: () => true, isEnabled: (name, context) => flags.isEnabled(name, context), isGone: (name) => gone.has(name) }
  const was = new WhatIfFlags(live, new Map([[flag, question.before]]))
  const will = new WhatIfFlags(live, new Map([[flag, question.after]]))
  const toNew: string[] = []
  const toLegacy: string[] = []
  const shadowOn: string[] = []
  const shadowOff: string[] = []
  // In the order the console lists schools everywhere else.
  for (const school of [...schools].sort((a, b) => a.id.localeCompare(b.id))) {
    const context = { tenantId: school.id, cohorts: school.cohorts, route: route.name }
    const sideWas = decideBackend(was, route, context, killSwitchFlag)
    const sideWill = decideBackend(will, route, context, killSwitchFlag)
    if (sideWas !== sideWill) (sideWill === 'new' ? toNew : toLegacy).push(school.id)
    if (shadowRoute !== undefined) {
      const shadowWas = sideWas === 'legacy' && decideBackend(was, shadowRoute, context, killSwitchFlag) === 'new'
      const shadowWill = sideWill === 'legacy' && decideBackend(will, shadowRoute, context, killSwitchFlag) === 'new'
      if (shadowWas !== shadowWill) (shadowWill ? shadowOn : shadowOff).push(school.id)
    }
  }
  return { toNew, toLegacy, shadowOn, shadowOff }
}
