// Route flags that vanish from their source keep deciding as they last did. An answer from
// Unleash with a shrunk or empty feature list (a token for the wrong project, an environment
// emptied by mistake) or a flags-file edit that drops a flag would otherwise move every school
// of the routes behind it at once. A missing flag is held with its last known definition until
// it comes back; it counts as *gone* only after FLAG_GONE_AFTER_MS (if set), and then only the
// routes that declared `whenFlagMissing: 'legacy' | 'new'` move, to the side they declared.
import type { ClientFeaturesResponse, Context } from 'unleash-client'
import type { EnhancedFeatureInterface, FeatureInterface } from 'unleash-client/lib/feature.js'
import { unleashEngine } from './unleash-engine.ts'
import type { FlagsLogger } from './flags.ts'

type Segment = NonNullable<ClientFeaturesResponse['segments']>[number]

/** What the edge decides for a route whose flag is truly gone. */
export type WhenFlagMissing = 'keep-last' | 'legacy' | 'new'

export interface FlagKeeperOptions {
  /** Flag name -> names of the routes that depend on it (their flag or kill switch). */
  readonly watched: ReadonlyMap<string, readonly string[]>
  /** A flag missing this long counts as gone; 0: never while the process runs. */
  readonly goneAfterMs: number
  readonly source: string
  readonly logger: FlagsLogger
  /** Unleash's static context (appName, environment), which its own isEnabled adds. */
  readonly staticContext: Context
  readonly now?: () => number
}

export interface MissingFlag {
  readonly flag: string
  readonly routes: readonly string[]
  /** ISO time the source stopped listing it. */
  readonly missingSince: string
  readonly missingForMs: number
  /** Past FLAG_GONE_AFTER_MS: routes with `whenFlagMissing: 'legacy' | 'new'` go there. */
  readonly gone: boolean
}

interface Known {
  readonly feature: FeatureInterface
  readonly enhanced: EnhancedFeatureInterface
}

export interface HeldFlag extends Known {
  readonly since: number
  readonly engine: { isEnabled (name: string, context: Context, fallback: () => boolean): boolean }
  goneLogged: boolean
}

export interface FlagSource {
  definition (name: string): FeatureInterface | undefined
  /** Every definition with its segments inline (read on changes only). */
  enhanced (): readonly EnhancedFeatureInterface[]
}

export class FlagKeeper {
  readonly #options: FlagKeeperOptions
  readonly #now: () => number
  readonly #known = new Map<string, Known>()
  readonly #held = new Map<string, HeldFlag>()
  #missingTotal = new Map<string, number>()

  constructor (options: FlagKeeperOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  /** Called after every change of the source's definitions (server answer, file edit, bootstrap). */
  update (source: FlagSource): void {
    let enhanced: Map<string, EnhancedFeatureInterface> | undefined
    for (const [flag, routes] of this.#options.watched) {
      const feature = source.definition(flag)
      if (feature !== undefined) {
        enhanced ??= new Map(source.enhanced().map((candidate) => [candidate.name, candidate]))
        this.#known.set(flag, { feature, enhanced: enhanced.get(flag) ?? (feature as EnhancedFeatureInterface) })
        const held = this.#held.get(flag)
        if (held !== undefined) {
          this.#held.delete(flag)
          this.#options.logger.info({ flag, routes, missingForMs: this.#now() - held.since, source: this.#options.source }, 'route flag back in the flag source')
        }
        continue
      }
      const known = this.#known.get(flag)
      if (known === undefined || this.#held.has(flag)) continue
      this.#held.set(flag, { ...known, since: this.#now(), engine: engineFor(known, source), goneLogged: false })
      this.#missingTotal.set(flag, (this.#missingTotal.get(flag) ?? 0) + 1)
      this.#options.logger.warn({ flag, routes, source: this.#options.source, goneAfterMs: this.#options.goneAfterMs }, 'route flag missing from the flag source: keeping its last known definition')
    }
  }

  /**
   * Learns the watched flags' definitions from the backup of a previous run, so that a flag
   * missing from the server's first answer after a restart is held too. Never overrides what
   * the source itself said in this run.
   */
  learn (features: readonly FeatureInterface[], segments: readonly Segment[], source: FlagSource): void {
    const byId = new Map(segments.map((segment) => [segment.id, segment]))
    for (const feature of features) {
      if (!this.#options.watched.has(feature.name) || this.#known.has(feature.name)) continue
      const enhanced = { ...feature, strategies: feature.strategies?.map((strategy) => ({ ...strategy, segments: strategy.segments?.map((id) => byId.get(id)) })) } as EnhancedFeatureInterface
      this.#known.set(feature.name, { feature, enhanced })
    }
    this.update(source)
  }

  /** `backup` with the held definitions added, so that they survive a restart. */
  withHeld<T extends { features: FeatureInterface[], segments?: Segment[] }> (backup: T): T {
    if (this.#held.size === 0) return backup
    const listed = new Set(backup.features.map((feature) => feature.name))
    const segments = new Map((backup.segments ?? []).map((segment) => [segment.id, segment]))
    const features = [...backup.features]
    for (const [flag, held] of this.#held) {
      if (listed.has(flag)) continue
      features.push(held.feature)
      for (const strategy of held.enhanced.strategies ?? []) {
        for (const segment of strategy.segments ?? []) if (segment !== undefined && !segments.has(segment.id)) segments.set(segment.id, segment)
      }
    }
    return { ...backup, features, segments: [...segments.values()] }
  }

  /** The held definition of a flag the source no longer lists; undefined for every other flag. */
  held (flag: string): HeldFlag | undefined {
    return this.#held.size === 0 ? undefined : this.#held.get(flag)
  }

  /**
   * For a flag the source does not list: true when it never listed it in this process, or it has
   * been missing for longer than FLAG_GONE_AFTER_MS.
   */
  isGone (flag: string): boolean {
    const held = this.held(flag)
    if (held === undefined) return true
    const goneAfterMs = this.#options.goneAfterMs
    if (goneAfterMs === 0 || this.#now() - held.since < goneAfterMs) return false
    if (!held.goneLogged) {
      held.goneLogged = true
      this.#options.logger.warn({ flag, routes: this.#options.watched.get(flag) ?? [], missingForMs: this.#now() - held.since }, 'route flag gone: routes that declare whenFlagMissing now go to that side')
    }
    return true
  }

  missing (): MissingFlag[] {
    const now = this.#now()
    return [...this.#held].map(([flag, held]) => ({
      flag,
      routes: this.#options.watched.get(flag) ?? [],
      missingSince: new Date(held.since).toISOString(),
      missingForMs: now - held.since,
      gone: this.#options.goneAfterMs > 0 && now - held.since >= this.#options.goneAfterMs
    }))
  }

  /** Times each watched flag went missing, for the metrics counter. */
  missingCounts (): ReadonlyMap<string, number> {
    return this.#missingTotal
  }

  get staticContext (): Context {
    return this.#options.staticContext
  }
}

function engineFor (known: Known, source: FlagSource): HeldFlag['engine'] {
  const segments = new Map<number, Segment>()
  for (const strategy of known.enhanced.strategies ?? []) {
    for (const segment of strategy.segments ?? []) if (segment !== undefined) segments.set(segment.id, segment)
  }
  const name = known.feature.name
  // Parent flags (dependencies) are read from the source as it is now.
  return unleashEngine({
    getToggle: (candidate: string) => candidate === name ? known.feature : source.definition(candidate),
    getSegment: (id: number) => segments.get(id)
  })
}

/** Flag -> routes for every flag that decides a route's side: its flag, its kill switch, the global kill switch. */
export function routeFlags (routes: ReadonlyArray<{ readonly name: string, readonly flag: string, readonly killSwitch?: string }>, globalKillSwitch: string | undefined): Map<string, string[]> {
  const watched = new Map<string, string[]>()
  const add = (flag: string, route: string): void => {
    const list = watched.get(flag) ?? []
    if (!list.includes(route)) list.push(route)
    watched.set(flag, list)
  }
  for (const route of routes) {
    add(route.flag, route.name)
    if (route.killSwitch !== undefined) add(route.killSwitch, route.name)
    if (globalKillSwitch !== undefined) add(globalKillSwitch, route.name)
  }
  return watched
}
