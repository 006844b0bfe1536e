// The moves, proved over generated schools and move sequences with unleash-client's own engine:
// a move does what it says to the schools it names and leaves every other school where it was.
import t from 'tap'
import fc from 'fast-check'
import { moveToLegacy, moveToNew, switchFlag, type Target } from '../../console/moves.ts'
import { NO_FLAG, versionOf, type FlagState } from '../../console/flag-store.ts'
import { WhatIfFlags } from '../../console/what-if.ts'
import type { FlagReader } from '../../flags/flags.ts'

const FLAG = 'attendance-page'
const COHORTS = ['pilot', 'wave-1', 'wave-2']
const NOTHING_LIVE: FlagReader = { isReady: () => true, isEnabled: () => false }

interface School { id: string, cohorts: string[] }

function onSet (state: FlagState, schools: readonly School[]): Set<string> {
  const flags = new WhatIfFlags(NOTHING_LIVE, new Map([[FLAG, state]]))
  return new Set(schools.filter((s) => flags.isEnabled(FLAG, { tenantId: s.id, cohorts: s.cohorts, route: 'attendance.page' })).map((s) => s.id))
}

const schoolsArb = fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 }).chain((ids) =>
  fc.tuple(...ids.map((id) => fc.subarray(COHORTS).map((cohorts) => ({ id: `school-${id}`, cohorts })))))

type Step = { to: 'new' | 'legacy', kind: 'schools', pick: number[] } | { to: 'new' | 'legacy', kind: 'cohort', cohort: string } | { to: 'new', kind: 'percentage', percent: number } | { kind: 'switch', on: boolean }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ to: fc.constantFrom('new' as const, 'legacy' as const), kind: fc.constant('schools' as const), pick: fc.array(fc.nat(), { minLength: 1, maxLength: 5 }) }),
  fc.record({ to: fc.constantFrom('new' as const, 'legacy' as const), kind: fc.constant('cohort' as const), cohort: fc.constantFrom(...COHORTS) }),
  fc.record({ to: fc.constant('new' as const), kind: fc.constant('percentage' as const), percent: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ kind: fc.constant('switch' as const), on: fc.boolean() })
)

t.test('every move moves exactly the schools it names', async (t) => {
  fc.assert(fc.property(schoolsArb, fc.array(stepArb, { minLength: 1, maxLength: 12 }), (schools, steps) => {
    let state: FlagState = NO_FLAG
    for (const step of steps) {
      const before = onSet(state, schools)
      if (step.kind === 'switch') {
        state = switchFlag(state, step.on)
        continue
      }
      let target: Target
      let named: Set<string>
      if (step.kind === 'schools') {
        const ids = [...new Set(step.pick.map((i) => (schools[i % schools.length] as School).id))]
        target = { kind: 'schools', ids }
        named = new Set(ids)
      } else if (step.kind === 'cohort') {
        const ids = schools.filter((s) => s.cohorts.includes(step.cohort)).map((s) => s.id)
        target = { kind: 'cohort', cohort: step.cohort, ids }
        named = new Set(ids)
      } else {
        target = { kind: 'percentage', percent: step.percent }
        named = new Set(schools.map((s) => s.id))
      }
      state = step.to === 'new'
        ? moveToNew(FLAG, state, target)
        : moveToLegacy(FLAG, state, target, (proposed, ids) => [...onSet(proposed, schools.filter((s) => ids.includes(s.id)))])
      const after = onSet(state, schools)
      if (state.enabled && state.strategies.length === 0) throw new Error('an enabled flag with no strategies would be on for every school')
      if (step.kind === 'percentage') {
        // Sticky: raising the share only adds schools, lowering it only removes them.
        continue
      }
      for (const id of named) {
        if (step.to === 'new' && !after.has(id)) throw new Error(`${id} should be on after ${JSON.stringify(step)}: ${JSON.stringify(state)}`)
        if (step.to === 'legacy' && after.has(id)) throw new Error(`${id} should be off after ${JSON.stringify(step)}: ${JSON.stringify(state)}`)
      }
      // An off flag's strategies are not in force before the move, so nothing else may change
      // only when it was on.
      for (const school of schools) {
        if (named.has(school.id)) continue
        if (before.has(school.id) !== after.has(school.id)) throw new Error(`${school.id} moved without being named by ${JSON.stringify(step)}`)
      }
    }
  }), { numRuns: 300 })
  t.pass('300 generated move sequences')
})

t.test('a share of schools is sticky: raising it keeps every school already on new', async (t) => {
  fc.assert(fc.property(schoolsArb, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), (schools, a, b) => {
    const [low, high] = a <= b ? [a, b] : [b, a]
    const lowState = moveToNew(FLAG, NO_FLAG, { kind: 'percentage', percent: low })
    const highState = moveToNew(FLAG, lowState, { kind: 'percentage', percent: high })
    const lowOn = onSet(lowState, schools)
    const highOn = onSet(highState, schools)
    for (const id of lowOn) if (!highOn.has(id)) throw new Error(`${id} left new when the share went from ${low}% to ${high}%`)
    if (high === 100 && highOn.size !== schools.length) throw new Error('100% is every school')
    if (low === 0 && lowOn.size !== 0) throw new Error('0% is no school')
  }), { numRuns: 200 })
  t.pass('200 generated shares')
})

t.test('moves edit the strategies already there, in shapes the Unleash UI shows', async (t) => {
  const start: FlagState = { enabled: true, strategies: [{ name: 'flexibleRollout', id: 'abc', parameters: { rollout: '100', stickiness: 'tenantId', groupId: FLAG }, constraints: [{ contextName: 'tenantId', operator: 'IN', values: ['school-a'] }], extra: 'kept' }] }
  const moved = moveToNew(FLAG, start, { kind: 'schools', ids: ['school-b'] })
  t.equal(moved.strategies.length, 1, 'the tenantId list is extended, not duplicated')
  t.equal(moved.strategies[0]?.id, 'abc', 'the strategy keeps its id')
  t.equal(moved.strategies[0]?.extra, 'kept', 'and what the console does not know')
  t.same(moved.strategies[0]?.constraints?.[0]?.values, ['school-a', 'school-b'])
  const back = moveToLegacy(FLAG, moved, { kind: 'schools', ids: ['school-b'] }, () => [])
  t.equal(versionOf(back), versionOf(start), 'moving school-b back gives the same flag as before')
  const none = moveToLegacy(FLAG, start, { kind: 'schools', ids: ['school-a'] }, () => [])
  t.same(none, { enabled: false, strategies: [] }, 'the last school out switches the flag off rather than leaving it on for everyone')
  const cohort = moveToNew(FLAG, start, { kind: 'cohort', cohort: 'wave-1', ids: ['school-b', 'school-c'] })
  const heldBack = moveToLegacy(FLAG, cohort, { kind: 'schools', ids: ['school-c'] }, (_state, ids) => ids.filter((id) => id === 'school-c'))
  t.same(heldBack.strategies[1]?.constraints, [
    { contextName: 'cohort', operator: 'IN', values: ['wave-1'], inverted: false, caseInsensitive: false },
    { contextName: 'tenantId', operator: 'NOT_IN', values: ['school-c'], inverted: false, caseInsensitive: false }
  ], 'a school held back from a cohort is named in a NOT_IN constraint')
  const again = moveToNew(FLAG, heldBack, { kind: 'schools', ids: ['school-c'] })
  t.equal(again.strategies.every((s) => (s.constraints ?? []).every((c) => c.operator !== 'NOT_IN')), true, 'moving it to new again removes it from the NOT_IN list')
})
