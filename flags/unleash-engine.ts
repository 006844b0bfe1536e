// unleash-client's own evaluation engine (the one Flags serves traffic with), constructed over a
// repository of our choosing: one held definition, one strategy at a time, a proposed state, a
// copy of the definitions in another thread. unleash-client exports the engine only from its
// lib/ files, as CommonJS default exports: this is the one place that reaches into them.
import type { Context } from 'unleash-client'
import type { Segment } from 'unleash-client/lib/strategy/strategy.js'
import clientModule from 'unleash-client/lib/client.js'
import strategyModule from 'unleash-client/lib/strategy/index.js'

/** Where the engine reads definitions: each in the shape of unleash-client's FeatureInterface. */
export interface EngineRepository {
  getToggle (name: string): object | undefined
  getSegment (id: number): Segment | undefined
}

export interface Engine {
  isEnabled (name: string, context: Context, fallback: () => boolean): boolean
}

const UnleashClient = (clientModule as unknown as { default: new (repository: EngineRepository, strategies: unknown[]) => Engine }).default
const { defaultStrategies } = strategyModule as unknown as { defaultStrategies: unknown[] }

/** The engine over `repository`, with every strategy unleash-client ships. */
export function unleashEngine (repository: EngineRepository): Engine {
  return new UnleashClient(repository, defaultStrategies)
}
