// "What would this flag say with that definition?": unleash-client's own engine (the one that
// serves traffic) evaluating a proposed flag state, for previews. Every other flag is read from
// the live flags, and the decision goes through the edge's own decideBackend.
import { unleashEngine, type Engine } from '../flags/unleash-engine.ts'
import { toUnleashContext, type FlagContext } from '../flags/flag-context.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { FlagState } from './flag-store.ts'

/** The live flags, with some flags replaced by proposed states. */
export class WhatIfFlags implements FlagReader {
  readonly #live: FlagReader
  readonly #proposed: ReadonlyMap<string, FlagState>
  readonly #client: Engine

  constructor (live: FlagReader, proposed: ReadonlyMap<string, FlagState>) {
    this.#live = live
    this.#proposed = proposed
    this.#client = unleashEngine({
      getToggle: (name: string) => {
        const state = proposed.get(name)
        return state === undefined ? undefined : { name, enabled: state.enabled, strategies: [...state.strategies], variants: [], type: 'release', project: 'default', stale: false, impressionData: false }
      },
      getSegment: () => undefined
    })
  }

  isReady (): boolean {
    return this.#live.isReady()
  }

  /** As Flags.isEnabled: once per cohort of the school, on when any evaluation is on. */
  isEnabled (flag: string, context: FlagContext): boolean {
    if (!this.#proposed.has(flag)) return this.#live.isEnabled(flag, context)
    const cohorts = context.cohorts.length === 0 ? [undefined] : context.cohorts
    return cohorts.some((cohort) => this.#client.isEnabled(flag, toUnleashContext(context, cohort), () => false))
  }

  /** A proposed flag is there by definition; any other is as gone as the live flags say. */
  isGone (flag: string): boolean {
    return !this.#proposed.has(flag) && this.#live.isGone(flag)
  }
}
