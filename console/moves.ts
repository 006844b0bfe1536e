// The moves a product owner makes, as changes to one flag's state in Unleash's own vocabulary:
// schools by a `tenantId IN` list, cohorts by a `cohort IN` list, a share of schools by a
// flexibleRollout sticky on tenantId, and schools held back by a `tenantId NOT_IN` list on every
// strategy. Each move edits the strategies that are already there where it can, so a flag
// written by hand keeps its shape. Pure: `isOn` says what the engine would answer for a school.
import type { Constraint, FlagState, Strategy } from './flag-store.ts'

export type Target =
  | { readonly kind: 'schools', readonly ids: readonly string[] }
  | { readonly kind: 'cohort', readonly cohort: string, readonly ids: readonly string[] }
  | { readonly kind: 'percentage', readonly percent: number }

/** Whether a proposed state is on for each school (the engine that serves traffic decides). */
export type IsOn = (state: FlagState, schoolIds: readonly string[]) => readonly string[]

export function moveToNew (flag: string, current: FlagState, target: Target): FlagState {
  // An off flag's strategies are not in force: starting from them would move more than asked.
  let strategies: Strategy[] = current.enabled ? [...current.strategies] : []
  if (target.kind === 'percentage') return withPercentage(flag, strategies, target.percent)
  strategies = strategies.map((strategy) => withoutExcluded(strategy, target.ids))
  const contextName = target.kind === 'schools' ? 'tenantId' : 'cohort'
  const values = target.kind === 'schools' ? target.ids : [target.cohort]
  const list = strategies.findIndex((strategy) => isListStrategy(strategy, contextName))
  if (list >= 0) {
    const strategy = strategies[list] as Strategy
    const constraint = (strategy.constraints ?? [])[0] as Constraint
    strategies[list] = { ...strategy, constraints: [{ ...constraint, values: union(constraint.values ?? [], values) }] }
  } else {
    strategies.push({
      name: 'flexibleRollout',
      title: target.kind === 'schools' ? 'Schools (ficus console)' : 'Cohorts (ficus console)',
      parameters: { rollout: '100', stickiness: 'tenantId', groupId: flag },
      constraints: [{ contextName, operator: 'IN', values: [...values], inverted: false, caseInsensitive: false }]
    })
  }
  return normalise({ enabled: true, strategies })
}

export function moveToLegacy (flag: string, current: FlagState, target: Target, isOn: IsOn): FlagState {
  if (!current.enabled) return current
  if (target.kind === 'percentage') return withPercentage(flag, [...current.strategies], target.percent)
  const contextName = target.kind === 'schools' ? 'tenantId' : 'cohort'
  const values = new Set(target.kind === 'schools' ? target.ids : [target.cohort])
  let strategies: Strategy[] = []
  for (const strategy of current.strategies) {
    if (!isListStrategy(strategy, contextName)) { strategies.push(strategy); continue }
    const constraint = (strategy.constraints ?? [])[0] as Constraint
    const left = (constraint.values ?? []).filter((value) => !values.has(value))
    if (left.length > 0) strategies.push({ ...strategy, constraints: [{ ...constraint, values: left }] })
  }
  let next = normalise({ enabled: current.enabled, strategies })
  // Schools still on through another strategy (a cohort, a percentage) are held back by name.
  const stillOn = isOn(next, target.ids)
  if (stillOn.length > 0) {
    strategies = next.strategies.map((strategy) => withExcluded(strategy, stillOn))
    next = normalise({ enabled: true, strategies })
  }
  return next
}

/**
 * Off keeps the strategies, so turning it back on restores exactly what was there. A flag with no
 * strategies stays off: on, it would be on for every school.
 */
export function switchFlag (current: FlagState, enabled: boolean): FlagState {
  return normalise({ enabled, strategies: current.strategies })
}

/** The kill-switch flag of a route, pulled (on for every school) or released. */
export function killSwitchState (on: boolean): FlagState {
  return on ? { enabled: true, strategies: [{ name: 'default', title: 'Kill switch pulled', parameters: {}, constraints: [] }] } : { enabled: false, strategies: [] }
}

function withPercentage (flag: string, strategies: Strategy[], percent: number): FlagState {
  const index = strategies.findIndex(isPercentageStrategy)
  if (percent <= 0) {
    if (index >= 0) strategies.splice(index, 1)
  } else if (index >= 0) {
    const strategy = strategies[index] as Strategy
    strategies[index] = { ...strategy, parameters: { ...strategy.parameters, rollout: String(percent) } }
  } else {
    strategies.push({ name: 'flexibleRollout', title: 'Share of schools (ficus console)', parameters: { rollout: String(percent), stickiness: 'tenantId', groupId: flag }, constraints: [] })
  }
  return normalise({ enabled: true, strategies })
}

/** An enabled flag with no strategies is on for everybody: ending with none means off. */
function normalise (state: FlagState): FlagState {
  return state.strategies.length === 0 ? { enabled: false, strategies: [] } : state
}

function isListStrategy (strategy: Strategy, contextName: string): boolean {
  const constraints = strategy.constraints ?? []
  const only = constraints[0]
  return constraints.length === 1 && only !== undefined && only.contextName === contextName && only.operator === 'IN' && only.inverted !== true &&
    (strategy.segments ?? []).length === 0 && strategy.disabled !== true && (strategy.name === 'default' || (strategy.name === 'flexibleRollout' && strategy.parameters?.rollout === '100'))
}

function isPercentageStrategy (strategy: Strategy): boolean {
  return strategy.name === 'flexibleRollout' && strategy.parameters?.stickiness === 'tenantId' && (strategy.constraints ?? []).length === 0 && (strategy.segments ?? []).length === 0
}

function isExclusion (constraint: Constraint): boolean {
  return constraint.contextName === 'tenantId' && constraint.operator === 'NOT_IN' && constraint.inverted !== true
}

function withoutExcluded (strategy: Strategy, ids: readonly string[]): Strategy {
  const drop = new Set(ids)
  const constraints = (strategy.constraints ?? []).flatMap((constraint) => {
    if (!isExclusion(constraint)) return [constraint]
    const left = (constraint.values ?? []).filter((value) => !drop.has(value))
    return left.length === 0 ? [] : [{ ...constraint, values: left }]
  })
  return { ...strategy, constraints }
}

function withExcluded (strategy: Strategy, ids: readonly string[]): Strategy {
  const constraints = [...(strategy.constraints ?? [])]
  const index = constraints.findIndex(isExclusion)
  if (index >= 0) {
    const constraint = constraints[index] as Constraint
    constraints[index] = { ...constraint, values: union(constraint.values ?? [], ids) }
  } else constraints.push({ contextName: 'tenantId', operator: 'NOT_IN', values: [...ids], inverted: false, caseInsensitive: false })
  return { ...strategy, constraints }
}

function union (a: readonly string[], b: readonly string[]): string[] {
  const seen = new Set(a)
  return [...a, ...b.filter((value) => !seen.has(value) && (seen.add(value), true))]
}
