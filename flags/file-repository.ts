// Flags read from a file in Unleash's client-features format, fed to unleash-client's own
// evaluation engine as its repository: the same strategies, constraints and stickiness as with a
// server, with no server. Also the parser for bootstrap files when a server is configured.
import { EventEmitter } from 'node:events'
import type { ClientFeaturesResponse } from 'unleash-client'
import type { EnhancedFeatureInterface } from 'unleash-client/lib/feature.js'
import { WatchedJsonFile } from '../files/watched-json-file.ts'

type Feature = ClientFeaturesResponse['features'][number]
type Segment = NonNullable<ClientFeaturesResponse['segments']>[number]

export interface FlagSnapshot {
  readonly features: ReadonlyMap<string, Feature>
  readonly segments: ReadonlyMap<number, Segment>
}

export interface FileFlagRepositoryOptions {
  readonly path: string
  readonly pollIntervalMs?: number
  readonly onInvalid?: (error: Error) => void
  readonly onReload?: (flagCount: number) => void
}

/** Implements unleash-client's RepositoryInterface (see its src/repository/index.ts). */
export class FileFlagRepository extends EventEmitter {
  readonly #file: WatchedJsonFile<FlagSnapshot>
  #snapshot: FlagSnapshot = { features: new Map(), segments: new Map() }

  constructor (options: FileFlagRepositoryOptions) {
    super()
    this.#file = new WatchedJsonFile({
      path: options.path,
      parse: parseClientFeatures,
      pollIntervalMs: options.pollIntervalMs,
      onChange: (snapshot) => {
        this.#snapshot = snapshot
        options.onReload?.(snapshot.features.size)
        this.emit('changed', [...snapshot.features.values()])
      },
      onInvalid: (error) => options.onInvalid?.(error)
    })
  }

  async start (): Promise<void> {
    this.#snapshot = this.#file.load()
    this.#file.watch()
    // unleash-client answers from its repository only after `ready`, and counts as synchronised after `changed`.
    this.emit('ready')
    this.emit('changed', [...this.#snapshot.features.values()])
  }

  /** Re-reads the file now, changed or not. */
  reload (): void {
    this.#file.reload()
  }

  stop (): void {
    this.#file.close()
  }

  getToggle (name: string): Feature | undefined {
    return this.#snapshot.features.get(name)
  }

  getToggles (): Feature[] {
    return [...this.#snapshot.features.values()]
  }

  getTogglesWithSegmentData (): EnhancedFeatureInterface[] {
    return this.getToggles().map((feature) => ({
      ...feature,
      strategies: feature.strategies?.map((strategy) => ({
        ...strategy,
        segments: (strategy.segments ?? []).map((id) => this.#snapshot.segments.get(id))
      }))
    }))
  }

  getSegment (id: number): Segment | undefined {
    return this.#snapshot.segments.get(id)
  }
}

/** Checks the shape unleash-client relies on and reports every problem with the flag's name. */
export function parseClientFeatures (json: unknown): FlagSnapshot {
  const body = json as Partial<ClientFeaturesResponse> | null
  if (body === null || typeof body !== 'object' || !Array.isArray(body.features)) {
    throw new Error('expected Unleash client features: { "version": 2, "features": [...] }')
  }
  const problems: string[] = []
  const features = new Map<string, Feature>()
  body.features.forEach((feature, index) => {
    const name = typeof feature?.name === 'string' && feature.name !== '' ? feature.name : undefined
    const where = name === undefined ? `features[${index}]` : `flag "${name}"`
    if (name === undefined) problems.push(`${where}.name must be a non-empty string`)
    if (typeof feature?.enabled !== 'boolean') problems.push(`${where}: "enabled" must be true or false`)
    if (!Array.isArray(feature?.strategies)) problems.push(`${where}: "strategies" must be an array`)
    else {
      feature.strategies.forEach((strategy, s) => {
        if (typeof strategy?.name !== 'string') problems.push(`${where}: strategies[${s}].name must be a string`)
        if (strategy?.constraints !== undefined && !Array.isArray(strategy.constraints)) {
          problems.push(`${where}: strategies[${s}].constraints must be an array`)
        }
      })
    }
    if (name !== undefined && features.has(name)) problems.push(`${where} is listed twice`)
    if (name !== undefined) features.set(name, feature)
  })
  const segments = new Map<number, Segment>()
  for (const segment of body.segments ?? []) {
    if (typeof segment?.id !== 'number' || !Array.isArray(segment.constraints)) {
      problems.push('segments must be objects with a numeric "id" and a "constraints" array')
    } else segments.set(segment.id, segment)
  }
  if (problems.length > 0) throw new Error(problems.join('; '))
  return { features, segments }
}
