// The side one route is on for one school, as the matrix shows it: the flags' answer (a kill
// switch first, then the route flag, then its shadow flag), then the school's breaker, which
// holds a school that the flags put on new on legacy. Shared by the main thread (cells, school
// pages) and the page worker (the matrix), so that both say the same.
import type { BreakerState } from '../core/safety-events.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { MigratedRoute } from '../core/route.ts'

export const SIDES = ['new', 'legacy', 'shadow', 'kill switch', 'breaker open'] as const
export type Side = typeof SIDES[number]

/** What of a route its side depends on, as plain data that can cross to the worker. */
export interface RouteFlags {
  readonly name: string
  readonly flag: string
  readonly killSwitch?: string
  readonly shadowFlag?: string
}

/**
 * A migrated route as the console passes it around: its flags, and what a page shows of it,
 * without its handler, so that it crosses to the page worker as it is.
 */
export interface PlainRoute extends RouteFlags {
  readonly method: MigratedRoute['method']
  readonly url: string
  readonly whenFlagMissing?: MigratedRoute['whenFlagMissing']
}

export function plainRoute (route: MigratedRoute, shadowFlag: string | undefined): PlainRoute {
  return {
    name: route.name,
    method: route.method,
    url: route.url,
    flag: route.flag,
    ...(route.killSwitch === undefined ? {} : { killSwitch: route.killSwitch }),
    ...(route.whenFlagMissing === undefined ? {} : { whenFlagMissing: route.whenFlagMissing }),
    ...(shadowFlag === undefined ? {} : { shadowFlag })
  }
}

/** The flags' side: never 'breaker open', which withBreaker adds. */
export function flagSide (flags: FlagReader, route: RouteFlags, school: { readonly id: string, readonly cohorts: readonly string[] }, killSwitchFlag: string | undefined): Side {
  const context = { tenantId: school.id, cohorts: school.cohorts, route: route.name }
  if (killSwitchFlag !== undefined && flags.isEnabled(killSwitchFlag, context)) return 'kill switch'
  if (route.killSwitch !== undefined && flags.isEnabled(route.killSwitch, context)) return 'kill switch'
  if (flags.isEnabled(route.flag, context)) return 'new'
  if (route.shadowFlag !== undefined && flags.isEnabled(route.shadowFlag, context)) return 'shadow'
  return 'legacy'
}

export function withBreaker (side: Side, breaker: BreakerState): Side {
  return side === 'new' && breaker !== 'closed' ? 'breaker open' : side
}
