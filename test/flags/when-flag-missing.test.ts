// Where a route goes when its flag is gone: while the flag is only missing it decides with its
// last known definition, whatever the route declares; once it is truly gone (missing for
// FLAG_GONE_AFTER_MS, or never listed in this process) a route declaring `whenFlagMissing:
// 'legacy' | 'new'` goes there, and 'keep-last' (the default) keeps the last definition.
// Flags from a real flags file through unleash-client's engine, over random routes and rules.
import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { pino } from 'pino'
import { decideBackend, explainDecision, type GuardedRoute } from '../../flags/decide-backend.ts'
import { Flags } from '../../flags/flags.ts'
import type { WhenFlagMissing } from '../../flags/flag-keeper.ts'
import { writeJson } from '../helpers/proxy-kit.ts'

const GONE_AFTER_MS = 150
const FLAG = 'the-route-flag'
const SCHOOLS = ['school-a', 'school-b', 'school-c', 'school-d']
const silent = pino({ level: 'silent' })
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function flagsWith (onFor: readonly string[] | undefined): object {
  if (onFor === undefined) return { version: 2, features: [{ name: 'some-other-flag', enabled: true, strategies: [] }] }
  return { version: 2, features: [{ name: FLAG, enabled: true, strategies: [{ name: 'default', constraints: [{ contextName: 'tenantId', operator: 'IN', values: [...onFor] }] }] }] }
}

const rule = fc.constantFrom<WhenFlagMissing | undefined>(undefined, 'keep-last', 'legacy', 'new')

t.test('missing: the last definition decides; gone: the declared side (keep-last keeps the last definition)', async (t) => {
  let run = 0
  await fc.assert(fc.asyncProperty(rule, fc.subarray(SCHOOLS), async (whenFlagMissing, onFor) => {
    const path = join(t.testdir(), `flags-${run++}.json`)
    writeJson(path, flagsWith(onFor))
    const flags = await Flags.fromFile(path, silent, 60_000, { watched: new Map([[FLAG, ['the.route']]]), goneAfterMs: GONE_AFTER_MS })
    try {
      const route: GuardedRoute = { flag: FLAG, ...(whenFlagMissing === undefined ? {} : { whenFlagMissing }) }
      const sides = (): string[] => SCHOOLS.map((tenantId) => decideBackend(flags, route, { tenantId, cohorts: [], route: 'the.route' }))
      const listed = sides()
      const expected = SCHOOLS.map((school) => onFor.includes(school) ? 'new' : 'legacy')
      if (JSON.stringify(listed) !== JSON.stringify(expected)) throw new Error(`listed: ${JSON.stringify(listed)}`)

      writeJson(path, flagsWith(undefined))
      flags.reload()
      if (JSON.stringify(sides()) !== JSON.stringify(listed)) throw new Error(`missing (not yet gone) moved schools: ${JSON.stringify(sides())}`)
      if (flags.isGone(FLAG)) throw new Error('gone before FLAG_GONE_AFTER_MS')

      await sleep(GONE_AFTER_MS + 30)
      const declared = whenFlagMissing === 'legacy' || whenFlagMissing === 'new' ? SCHOOLS.map(() => whenFlagMissing) : listed
      if (JSON.stringify(sides()) !== JSON.stringify(declared)) throw new Error(`gone, ${String(whenFlagMissing)}: ${JSON.stringify(sides())}`)
      const explained = explainDecision(flags, route, { tenantId: 'school-a', cohorts: [], route: 'the.route' })
      if (explained.backend !== declared[0]) throw new Error(`/decisions disagrees: ${JSON.stringify(explained)}`)
      if (declared !== listed && !/gone from the flag source.*whenFlagMissing/.test(explained.reason)) throw new Error(explained.reason)
      if (declared === listed && !/missing from file .*last known definition/.test(explained.reason)) throw new Error(explained.reason)
      if (!flags.status().missingFlags[0]?.gone) throw new Error('/readyz does not say it is gone')

      writeJson(path, flagsWith(onFor))
      flags.reload()
      if (JSON.stringify(sides()) !== JSON.stringify(listed) || flags.status().missingFlags.length !== 0) throw new Error('back: decides from the file again')
    } finally {
      await flags.close()
    }
  }), { numRuns: 24 })
  t.pass('24 random routes and flag states')
})

t.test('a flag never listed in this process is gone at once: the declared side, else legacy', async (t) => {
  const path = join(t.testdir(), 'flags.json')
  writeJson(path, flagsWith(undefined))
  const flags = await Flags.fromFile(path, silent, 60_000, { watched: new Map([[FLAG, ['the.route']]]), goneAfterMs: 0 })
  t.teardown(() => flags.close())
  const context = { tenantId: 'school-a', cohorts: [], route: 'the.route' }
  for (const whenFlagMissing of [undefined, 'keep-last', 'legacy', 'new'] as const) {
    const side = decideBackend(flags, { flag: FLAG, ...(whenFlagMissing === undefined ? {} : { whenFlagMissing }) }, context)
    t.equal(side, whenFlagMissing === 'new' ? 'new' : 'legacy', `${String(whenFlagMissing)}: ${side}`)
  }
})

t.test('FLAG_GONE_AFTER_MS=0: a missing flag is held for as long as the process runs', async (t) => {
  const path = join(t.testdir(), 'flags.json')
  writeJson(path, flagsWith(['school-a']))
  const flags = await Flags.fromFile(path, silent, 60_000, { watched: new Map([[FLAG, ['the.route']]]), goneAfterMs: 0 })
  t.teardown(() => flags.close())
  writeJson(path, flagsWith(undefined))
  flags.reload()
  await sleep(GONE_AFTER_MS * 2)
  t.equal(decideBackend(flags, { flag: FLAG, whenFlagMissing: 'legacy' }, { tenantId: 'school-a', cohorts: [], route: 'the.route' }), 'new', 'still the last definition')
  t.equal(flags.isGone(FLAG), false)
})

t.test('a kill switch that vanishes stays in force: every school it killed stays on legacy', async (t) => {
  const KILL = 'the-kill-switch'
  const path = join(t.testdir(), 'flags.json')
  const file = (withKill: boolean, killed: readonly string[]): object => ({
    version: 2,
    features: [
      { name: FLAG, enabled: true, strategies: [] },
      ...(withKill ? [{ name: KILL, type: 'kill-switch', enabled: true, strategies: [{ name: 'default', constraints: [{ contextName: 'tenantId', operator: 'IN', values: [...killed] }] }] }] : [])
    ]
  })
  await fc.assert(fc.asyncProperty(fc.subarray(SCHOOLS), async (killed) => {
    writeJson(path, file(true, killed))
    const flags = await Flags.fromFile(path, silent, 60_000, { watched: new Map([[FLAG, ['the.route']], [KILL, ['the.route']]]), goneAfterMs: 0 })
    try {
      const route: GuardedRoute = { flag: FLAG, killSwitch: KILL }
      const sides = (): string[] => SCHOOLS.map((tenantId) => decideBackend(flags, route, { tenantId, cohorts: [], route: 'the.route' }))
      const before = sides()
      writeJson(path, file(false, killed))
      flags.reload()
      if (JSON.stringify(sides()) !== JSON.stringify(before)) throw new Error(`kill switch gone, killed ${JSON.stringify(killed)}: ${JSON.stringify(before)} -> ${JSON.stringify(sides())}`)
    } finally {
      await flags.close()
    }
  }), { numRuns: 16 })
  t.pass('16 random sets of killed schools')
})
