// What a flag sees of a request. Product owners write Unleash constraints on these field names;
// the README's "Flag context" table documents them.
import type { Context } from 'unleash-client'

export interface FlagContext {
  /** The school (sub-domain label). Always present; also the stickiness key of rollouts. */
  readonly tenantId: string
  /** The school's cohorts from the registry (`pilot`, `wave-1`, ...). */
  readonly cohorts: readonly string[]
  /** The migrated route's name, e.g. `attendance.page`. */
  readonly route: string
  readonly remoteAddress?: string
  readonly userId?: string
  readonly sessionId?: string
}

/**
 * Unleash reads custom fields from `properties`; `tenantId` there is what `stickiness: tenantId`
 * hashes. Unleash context values are single strings, so `cohort` holds one cohort at a time:
 * the caller evaluates once per cohort (see Flags.isEnabled).
 */
export function toUnleashContext (context: FlagContext, cohort: string | undefined): Context {
  return {
    userId: context.userId,
    sessionId: context.sessionId,
    remoteAddress: context.remoteAddress,
    properties: { tenantId: context.tenantId, route: context.route, cohort, cohorts: delimitedCohorts(context.cohorts) }
  }
}

// `,pilot,wave-1,`: lets a product owner write `cohorts STR_CONTAINS ,pilot,`, negatable too.
const delimited = new WeakMap<readonly string[], string>()
function delimitedCohorts (cohorts: readonly string[]): string {
  let value = delimited.get(cohorts)
  if (value === undefined) {
    value = `,${cohorts.join(',')},`
    delimited.set(cohorts, value)
  }
  return value
}
