// Where the console reads and writes flags: the flags file (atomically, keeping what it does not
// understand) or Unleash's Admin API. A flag is handled as its state in one environment: on or
// off, and its strategies in Unleash's own shape, so both tools show and edit the same thing.
import { createHash } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'

export interface Constraint {
  readonly contextName: string
  readonly operator: string
  readonly values?: readonly string[]
  readonly inverted?: boolean
  readonly caseInsensitive?: boolean
  readonly [other: string]: unknown
}

export interface Strategy {
  readonly name: string
  readonly id?: string
  readonly title?: string
  readonly parameters?: Readonly<Record<string, string>>
  readonly constraints?: readonly Constraint[]
  readonly segments?: readonly number[]
  readonly [other: string]: unknown
}

export interface FlagState {
  readonly enabled: boolean
  readonly strategies: readonly Strategy[]
}

export const NO_FLAG: FlagState = Object.freeze({ enabled: false, strategies: Object.freeze([]) })

export interface StoredFlag {
  /** NO_FLAG when the flag does not exist yet. */
  readonly state: FlagState
  readonly exists: boolean
  /** Changes whenever the state does: a save names the version its preview was computed from. */
  readonly version: string
}

export interface FlagStore {
  readonly description: string
  /** Most values one constraint may hold in this store (Unleash's resource limit), if any. */
  readonly maxConstraintValues?: number
  read (flag: string): Promise<StoredFlag>
  /** Replaces the flag's state when it is still at `expectedVersion`; false when it moved on. */
  write (flag: string, next: FlagState, expectedVersion: string, kind: 'release' | 'kill-switch'): Promise<boolean>
}

/** What the state means, ignoring ids, titles and key order: equal states get equal versions. */
export function versionOf (state: FlagState): string {
  const canonical = {
    enabled: state.enabled,
    strategies: state.strategies.map((strategy) => ({
      name: strategy.name,
      parameters: sortKeys(strategy.parameters ?? {}),
      constraints: (strategy.constraints ?? []).map((c) => ({ contextName: c.contextName, operator: c.operator, values: [...(c.values ?? [])], inverted: c.inverted === true, caseInsensitive: c.caseInsensitive === true, value: c.value ?? null })),
      segments: [...(strategy.segments ?? [])],
      disabled: strategy.disabled === true
    }))
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 16)
}

function sortKeys (record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))
}

/**
 * The flags file in Unleash's client-features format. A write replaces only `enabled` and
 * `strategies` of the one flag (every other key, flag and segment stays as it was), keeps the
 * file's indentation, and goes through a temporary file renamed over the original, so the
 * flags reader never sees half a file. Writes in this process are serialised.
 */
export class FileFlagStore implements FlagStore {
  readonly description: string
  readonly #path: string
  #queue: Promise<unknown> = Promise.resolve()

  constructor (path: string) {
    this.#path = path
    this.description = 'the flags file'
  }

  async read (flag: string): Promise<StoredFlag> {
    const feature = this.#load().document.features.find((candidate) => candidate.name === flag)
    const state: FlagState = feature === undefined ? NO_FLAG : { enabled: feature.enabled === true, strategies: (feature.strategies ?? []) as Strategy[] }
    return { state, exists: feature !== undefined, version: versionOf(state) }
  }

  async write (flag: string, next: FlagState, expectedVersion: string, kind: 'release' | 'kill-switch'): Promise<boolean> {
    const run = this.#queue.then(() => this.#write(flag, next, expectedVersion, kind))
    this.#queue = run.catch(() => {})
    return await run
  }

  #write (flag: string, next: FlagState, expectedVersion: string, kind: string): boolean {
    const { document, text } = this.#load()
    const index = document.features.findIndex((candidate) => candidate.name === flag)
    const current = index < 0 ? NO_FLAG : { enabled: document.features[index]?.enabled === true, strategies: (document.features[index]?.strategies ?? []) as Strategy[] }
    if (versionOf(current) !== expectedVersion) return false
    if (index < 0) document.features.push({ name: flag, type: kind, enabled: next.enabled, strategies: [...next.strategies] })
    else document.features[index] = { ...document.features[index], enabled: next.enabled, strategies: [...next.strategies] }
    const indent = /\n([ \t]+)"/.exec(text)?.[1] ?? '  '
    const temporary = `${this.#path}.${process.pid}.tmp`
    writeFileSync(temporary, JSON.stringify(document, null, indent) + (text.endsWith('\n') ? '\n' : ''), { mode: 0o644 })
    renameSync(temporary, this.#path)
    return true
  }

  #load (): { document: { features: Array<Record<string, unknown> & { name?: unknown, enabled?: unknown, strategies?: unknown[] }> }, text: string } {
    const text = readFileSync(this.#path, 'utf8')
    const document = JSON.parse(text) as { features: Array<Record<string, unknown> & { name?: unknown, enabled?: unknown, strategies?: unknown[] }> }
    if (!Array.isArray(document?.features)) throw new Error('the flags file has no "features" list')
    return { document, text }
  }
}

/**
 * Flags served by an Unleash server with no Admin API configured: the console shows where things
 * stand but makes no move (writing the bootstrap file would change nothing that is served).
 */
export class ReadOnlyFlagStore implements FlagStore {
  readonly description = 'Unleash (read only: set UNLEASH_ADMIN_URL and UNLEASH_ADMIN_TOKEN to make moves)'

  async read (): Promise<StoredFlag> {
    throw new Error('moves need UNLEASH_ADMIN_URL and UNLEASH_ADMIN_TOKEN: flags come from an Unleash server')
  }

  async write (): Promise<boolean> {
    throw new Error('moves need UNLEASH_ADMIN_URL and UNLEASH_ADMIN_TOKEN: flags come from an Unleash server')
  }
}
