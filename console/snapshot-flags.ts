// The flags as the edge decides them, from a copy of Flags.definitions(): unleash-client's own
// engine over the same definitions, segments and static context, evaluated once per cohort as
// Flags.isEnabled does. The console's page worker decides with it, since it cannot reach the
// main thread's Flags; counting nothing into Unleash's usage metrics, as a console read should.
import type { Context } from 'unleash-client'
import type { FeatureInterface } from 'unleash-client/lib/feature.js'
import type { Segment } from 'unleash-client/lib/strategy/strategy.js'
import clientModule from 'unleash-client/lib/client.js'
import strategyModule from 'unleash-client/lib/strategy/index.js'
import { toUnleashContext, type FlagContext } from '../flags/flag-context.ts'
import type { FlagDefinitions, FlagReader } from '../flags/flags.ts'

const UnleashClient = (clientModule as unknown as { default: new (repository: object, strategies: unknown[]) => { isEnabled (name: string, context: Context, fallback: () => boolean): boolean } }).default
const { defaultStrategies } = strategyModule as unknown as { defaultStrategies: unknown[] }

export class SnapshotFlags implements FlagReader {
  readonly version: number
  readonly #features: ReadonlyMap<string, FeatureInterface>
  readonly #staticContext: Context
  readonly #client: InstanceType<typeof UnleashClient>

  constructor (definitions: FlagDefinitions) {
    this.version = definitions.version
    const features = new Map(definitions.features.map((feature) => [feature.name, feature]))
    const segments = new Map<number, Segment>(definitions.segments.map((segment) => [segment.id, segment]))
    this.#features = features
    this.#staticContext = definitions.staticContext
    this.#client = new UnleashClient({ getToggle: (name: string) => features.get(name), getSegment: (id: number) => segments.get(id) }, defaultStrategies)
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
