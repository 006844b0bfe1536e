// The flags as the edge decides them, from a copy of Flags.definitions(): unleash-client's own
// engine over the same definitions, segments and static context, evaluated once per cohort as
// Flags.isEnabled does. The console's page worker decides with it, since it cannot reach the
// main thread's Flags; counting nothing into Unleash's usage metrics, as a console read should.
import type { Context } from 'unleash-client'
import type { FeatureInterface } from 'unleash-client/lib/feature.js'
import type { Segment } from 'unleash-client/lib/strategy/strategy.js'
import { unleashEngine, type Engine } from '../flags/unleash-engine.ts'
import { toUnleashContext, type FlagContext } from '../flags/flag-context.ts'
import type { FlagDefinitions, FlagReader } from '../flags/flags.ts'

// unleash-client's operators that compare with the time of the evaluation.
const CLOCK_OPERATORS: ReadonlySet<string> = new Set(['DATE_AFTER', 'DATE_BEFORE'])

export class SnapshotFlags implements FlagReader {
  readonly version: number
  /** Whether any strategy or segment compares with the clock: its answers can change on their own. */
  readonly readsClock: boolean
  readonly #features: ReadonlyMap<string, FeatureInterface>
  readonly #staticContext: Context
  readonly #client: Engine

  constructor (definitions: FlagDefinitions) {
    this.version = definitions.version
    const features = new Map(definitions.features.map((feature) => [feature.name, feature]))
    const segments = new Map<number, Segment>(definitions.segments.map((segment) => [segment.id, segment]))
    this.#features = features
    this.#staticContext = definitions.staticContext
    const constraints = [...definitions.features.flatMap((feature) => (feature.strategies ?? []).flatMap((strategy) => strategy.constraints ?? [])), ...definitions.segments.flatMap((segment) => segment.constraints)]
    this.readsClock = constraints.some((constraint) => CLOCK_OPERATORS.has(constraint.operator))
    this.#client = unleashEngine({ getToggle: (name: string) => features.get(name), getSegment: (id: number) => segments.get(id) })
  }

  isReady (): boolean {
    return true
  }

  isEnabled (flag: string, context: FlagContext): boolean {
    const cohorts = context.cohorts
    const unleashContext = { ...this.#staticContext, ...toUnleashContext(context, cohorts[0]) }
    if (this.#client.isEnabled(flag, unleashContext, () => false)) return true
    for (let i = 1; i < cohorts.length; i++) {
      (unleashContext.properties as Record<string, string | undefined>).cohort = cohorts[i]
      if (this.#client.isEnabled(flag, unleashContext, () => false)) return true
    }
    return false
  }

  /** Without Flags' clock for held flags: gone only when the copy does not list the flag at all. */
  isGone (flag: string): boolean {
    return !this.#features.has(flag)
  }
}
