// Why a flag says what it says for a school: the first strategy that matched, or why none did.
// Used by the admin listener's /decisions, off the request path, so clarity beats speed here.
import type { Context } from 'unleash-client'
import type { EnhancedFeatureInterface } from 'unleash-client/lib/feature.js'
import { unleashEngine } from './unleash-engine.ts'

export interface Explanation {
  readonly enabled: boolean
  readonly reason: string
  readonly strategy?: { readonly index: number, readonly name: string, readonly parameters?: unknown, readonly constraints?: unknown, readonly segments?: unknown }
}

export function explainFlag (feature: EnhancedFeatureInterface | undefined, contexts: readonly Context[]): Explanation {
  if (feature === undefined) return { enabled: false, reason: 'flag not found: the route stays on legacy' }
  if (!feature.enabled) return { enabled: false, reason: 'flag is disabled in this environment' }
  const strategies = feature.strategies ?? []
  if (strategies.length === 0) return { enabled: true, reason: 'flag is enabled with no strategies' }
  for (const [index, strategy] of strategies.entries()) {
    const segments = (strategy.segments ?? []).filter((segment) => segment !== undefined)
    const single = { ...feature, strategies: [{ ...strategy, segments: segments.map((segment) => segment.id) }] }
    const repository = {
      getToggle: (name: string) => name === feature.name ? single : undefined,
      getSegment: (id: number) => segments.find((segment) => segment.id === id)
    }
    const client = unleashEngine(repository)
    if (contexts.some((context) => client.isEnabled(feature.name, context, () => false))) {
      return {
        enabled: true,
        reason: `strategy ${index + 1} (${strategy.name}) matched`,
        strategy: { index, name: strategy.name, parameters: strategy.parameters, constraints: strategy.constraints, segments }
      }
    }
  }
  return { enabled: false, reason: `none of the ${strategies.length} strategies matched` }
}
