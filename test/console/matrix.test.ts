// The matrix and the previews are decided in the page worker, from a copy of the flag
// definitions: proved over generated flags and schools to put every school on the side the
// edge's own Flags puts it on, with a breaker holding a school on legacy, and with a route flag
// gone from the file (held); and a proposed flag state to move the same schools either way.
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Flags } from '../../flags/flags.ts'
import { Matrix, type SchoolRow } from '../../console/matrix.ts'
import { flagSide, withBreaker, type Side } from '../../console/side.ts'
import { sideChanges } from '../../console/side-changes.ts'
import { SnapshotFlags } from '../../console/snapshot-flags.ts'

const SILENT = { info () {}, warn () {}, error () {} }
const COHORTS = ['pilot', 'wave-1', 'wave-2']
const KILL = 'ficus-kill-switch'
const ROUTES = [
  { name: 'attendance.page', method: 'GET', url: '/attendance', flag: 'attendance', shadowFlag: 'attendance-shadow' },
  { name: 'timetable.page', method: 'GET', url: '/timetable', flag: 'timetable', killSwitch: 'timetable-kill' },
  { name: 'me', method: 'GET', url: '/me', flag: 'attendance' }
]
const FLAG_NAMES = ['attendance', 'attendance-shadow', 'timetable', 'timetable-kill', KILL]

const constraintArb = fc.oneof(
  fc.record({ contextName: fc.constant('cohort'), operator: fc.constantFrom('IN', 'NOT_IN'), values: fc.subarray(COHORTS, { minLength: 1 }), inverted: fc.boolean() }),
  fc.record({ contextName: fc.constant('tenantId'), operator: fc.constant('IN'), values: fc.uniqueArray(fc.integer({ min: 0, max: 30 }).map((i) => `school-${i}`), { minLength: 1, maxLength: 8 }), inverted: fc.boolean() }),
  fc.record({ contextName: fc.constant('cohorts'), operator: fc.constant('STR_CONTAINS'), values: fc.subarray(COHORTS, { minLength: 1 }).map((list) => list.map((c) => `,${c},`)), inverted: fc.boolean() })
)
const strategyArb = fc.record({
  rollout: fc.integer({ min: 0, max: 100 }),
  constraints: fc.array(constraintArb, { maxLength: 2 }),
  segment: fc.boolean()
})
const flagArb = fc.record({ enabled: fc.boolean(), strategies: fc.array(strategyArb, { minLength: 1, maxLength: 3 }) })
// Kill switches mostly off, or they would hide what the route flags say.
const killSwitchArb = fc.oneof({ arbitrary: fc.constant({ enabled: false, strategies: [{ rollout: 100, constraints: [], segment: false }] }), weight: 3 }, { arbitrary: flagArb, weight: 1 })
const schoolsArb = fc.uniqueArray(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 20 }).chain((ids) =>
  fc.tuple(...ids.map((id) => fc.subarray(COHORTS).map((cohorts): SchoolRow => ({ id: `school-${id}`, name: `School ${id}`, status: 'active', cohorts })))))

function flagsFile (flags: ReadonlyArray<{ enabled: boolean, strategies: ReadonlyArray<{ rollout: number, constraints: unknown[], segment: boolean }> }>, names: readonly string[]): string {
  return JSON.stringify({
    version: 2,
    segments: [{ id: 1, name: 'pilot-only', constraints: [{ contextName: 'cohort', operator: 'IN', values: ['pilot'] }] }],
    features: flags.map((flag, i) => ({
      name: names[i],
      enabled: flag.enabled,
      strategies: flag.strategies.map((strategy) => ({
        name: 'flexibleRollout',
        parameters: { rollout: String(strategy.rollout), stickiness: 'tenantId', groupId: names[i] },
        constraints: strategy.constraints,
        ...(strategy.segment ? { segments: [1] } : {})
      }))
    })).filter((feature) => feature.name !== undefined)
  })
}

/** Every (route, school) side, as the worker's matrix shows it and as the edge's Flags decides it. */
function sides (matrix: Matrix, flags: Flags, schools: readonly SchoolRow[], broken: ReadonlySet<string>): { shown: Side[], decided: Side[] } {
  const sorted = [...schools].sort((a, b) => (a.id < b.id ? -1 : 1))
  const shown: Side[] = []
  const decided: Side[] = []
  ROUTES.forEach((route, r) => sorted.forEach((school, position) => {
    shown.push(matrix.evidence(r, [position], undefined).side)
    decided.push(withBreaker(flagSide(flags, route, school, KILL), broken.has(`${r}:${school.id}`) ? 'open' : 'closed'))
  }))
  return { shown, decided }
}

t.test('the worker\'s matrix puts every school where the edge\'s flags do', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-matrix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'flags.json')
  await fc.assert(fc.asyncProperty(fc.tuple(flagArb, flagArb, flagArb, killSwitchArb, killSwitchArb), schoolsArb, fc.nat(), async (definitions, schools, pick) => {
    writeFileSync(path, flagsFile(definitions, FLAG_NAMES))
    const flags = await Flags.fromFile(path, SILENT, 0, { watched: new Map([['attendance', ['attendance.page', 'me']]]), goneAfterMs: 0 })
    try {
      // One school's breaker open on the attendance page.
      const brokenSchool = (schools[pick % schools.length] as SchoolRow).id
      const broken = new Set([`0:${brokenSchool}`])
      const matrix = new Matrix({ routes: ROUTES, killSwitchFlag: KILL, store: 'the flags file' })
      const update = { takenAt: Date.now(), schools, breakers: [[[brokenSchool, 'open' as const]], [], []], shares: [undefined, undefined, undefined] }
      matrix.update({ ...update, flags: flags.definitions() })
      const live = sides(matrix, flags, schools, broken)
      t.strictSame(live.shown, live.decided)
      // A preview of the first route's flag proposed as the second generated flag.
      const proposed = { enabled: definitions[1].enabled, strategies: JSON.parse(flagsFile([definitions[1]], ['attendance'])).features[0].strategies }
      const question = { route: ROUTES[0] as typeof ROUTES[0], shadowRoute: undefined, flag: 'attendance', before: { enabled: definitions[0].enabled, strategies: JSON.parse(flagsFile([definitions[0]], ['attendance'])).features[0].strategies }, after: proposed, killSwitchFlag: KILL, gone: [] }
      const copy = new SnapshotFlags(flags.definitions() as NonNullable<ReturnType<Flags['definitions']>>)
      t.strictSame(sideChanges(copy, schools, question), sideChanges(flags, schools, question))
      const shadowQuestion = { ...question, flag: 'attendance-shadow', shadowRoute: { flag: 'attendance-shadow' } }
      t.strictSame(sideChanges(copy, schools, shadowQuestion), sideChanges(flags, schools, shadowQuestion))
      // The route flag gone from the file: Flags holds its last definition, and so does the copy.
      writeFileSync(path, flagsFile(definitions.slice(1), FLAG_NAMES.slice(1)))
      flags.reload()
      t.equal(flags.knows('attendance'), false)
      matrix.update({ ...update, takenAt: Date.now(), flags: flags.definitions() })
      const held = sides(matrix, flags, schools, broken)
      t.strictSame(held.shown, held.decided)
      t.strictSame(held.shown, live.shown)
    } finally {
      await flags.close()
    }
  }), { numRuns: 100 })
})

t.test('sides are decided again as time passes only while a strategy compares with the clock', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-matrix-clock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'flags.json')
  const schools: SchoolRow[] = [{ id: 'school-a', name: 'School A', status: 'active', cohorts: [] }]
  const attendance = (constraints: unknown[]) => [{ enabled: true, strategies: [{ rollout: 100, constraints, segment: false }] }]
  // What every read sends; the schools and the flags only when they changed.
  const update = { breakers: [[], [], []], shares: [undefined, undefined, undefined] }

  // On for everyone, no clock: the sides stand until the flags or the schools change.
  writeFileSync(path, flagsFile(attendance([]), FLAG_NAMES))
  const plain = await Flags.fromFile(path, SILENT, 0)
  t.teardown(() => plain.close())
  const steady = new Matrix({ routes: ROUTES, killSwitchFlag: KILL, store: 'the flags file' })
  const start = Date.now()
  steady.update({ ...update, takenAt: start, schools, flags: plain.definitions() })
  steady.update({ ...update, takenAt: start + 60_000 })
  t.equal(steady.decisions, 1, 'a minute later, the same sides, not decided again')

  // On from a moment from now: the matrix follows the clock within its 10 s.
  const from = new Date(Date.now() + 1_500).toISOString()
  writeFileSync(path, flagsFile(attendance([{ contextName: 'currentTime', operator: 'DATE_AFTER', value: from }]), FLAG_NAMES))
  const timed = await Flags.fromFile(path, SILENT, 0)
  t.teardown(() => timed.close())
  const matrix = new Matrix({ routes: ROUTES, killSwitchFlag: KILL, store: 'the flags file' })
  matrix.update({ ...update, takenAt: Date.now(), schools, flags: timed.definitions() })
  t.equal(matrix.evidence(0, [0], undefined).side, 'legacy', 'before its time, legacy')
  await new Promise((resolve) => setTimeout(resolve, Date.parse(from) - Date.now() + 100))
  t.equal(timed.isEnabled('attendance', { tenantId: 'school-a', cohorts: [], route: 'attendance.page' }), true, 'the edge has moved it')
  matrix.update({ ...update, takenAt: Date.now() + 11_000 })
  t.equal(matrix.decisions, 2, 'decided again once its sides were 10 s old')
  t.equal(matrix.evidence(0, [0], undefined).side, 'new', 'and shown where the edge puts it')
})
