// The flag reader the edge asks on every migrated route: synchronous, answered from memory by
// unleash-client's engine, fed either by a file or by an Unleash server. It refuses to answer
// until flags are loaded, because the "everything off" state of an unloaded client would
// silently move every school back to legacy.
import { readFileSync } from 'node:fs'
import { Unleash, type ClientFeaturesResponse, type Context } from 'unleash-client'
import type { FeatureInterface } from 'unleash-client/lib/feature.js'
import type { Segment } from 'unleash-client/lib/strategy/strategy.js'
import { FileFlagRepository, parseClientFeatures } from './file-repository.ts'
import storageModule from 'unleash-client/lib/repository/storage-provider-file.js'
import { toUnleashContext, type FlagContext } from './flag-context.ts'
import { explainFlag, type Explanation } from './explain.ts'
import { FlagErrors } from './errors.ts'
import { FlagKeeper, type FlagSource, type HeldFlag, type MissingFlag } from './flag-keeper.ts'

export interface FlagReader {
  isReady (): boolean
  /** Throws FICUS_ERR_FLAGS_NOT_READY rather than guessing when flags are not loaded yet. */
  isEnabled (flag: string, context: FlagContext): boolean
  /**
   * True when the source does not list `flag` and it is not held either: never seen in this
   * process, or missing for longer than FLAG_GONE_AFTER_MS. Throws like isEnabled before ready.
   */
  isGone (flag: string): boolean
}

/** What Flags decides with, as plain data (see Flags.definitions). */
export interface FlagDefinitions {
  readonly version: number
  readonly features: readonly FeatureInterface[]
  readonly segments: readonly Segment[]
  readonly staticContext: Context
}

/** Which flags to hold when their source stops listing them (see flag-keeper.ts). */
export interface FlagKeeping {
  /** Flag name -> names of the routes that depend on it. */
  readonly watched: ReadonlyMap<string, readonly string[]>
  /** 0: a missing flag is held for as long as the process runs. */
  readonly goneAfterMs: number
}

const FileStorageProvider = (storageModule as unknown as { default: new (path: string) => { get (key: string): Promise<ClientFeaturesResponse | undefined>, set (key: string, data: ClientFeaturesResponse): Promise<void> } }).default

const NO_KEEPING: FlagKeeping = { watched: new Map(), goneAfterMs: 0 }
/** Retries after the server refused the token: from UNLEASH_REFRESH_MS, doubling, at most this. */
export const AUTH_RETRY_MAX_MS = 60_000
/** While the token stays refused, the error is logged again this often. */
const AUTH_LOG_EVERY_MS = 60_000

export interface FlagsLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  error (obj: object, msg: string): void
}

export interface UnleashServerOptions {
  readonly url: string
  readonly apiToken: string
  readonly appName: string
  readonly environment: string
  readonly refreshIntervalMs: number
  /** Client-features file served from until the server answers (optional). */
  readonly bootstrapFile: string | undefined
  /** Where the client keeps its last good flags across restarts. */
  readonly backupDir: string
  readonly instanceId?: string
}

export interface FlagsStatus {
  readonly ready: boolean
  readonly source: string
  /** Milliseconds since flags were last confirmed by their source; undefined before the first. */
  readonly staleForMs: number | undefined
  readonly sourceReachable: boolean
  /** Route flags the source stopped listing, each deciding with its last known definition. */
  readonly missingFlags: readonly MissingFlag[]
  /** Set while the server refuses the API token (401/403): the flags are stale until it accepts it. */
  readonly authRejected: { readonly status: number, readonly sinceMs: number, readonly retries: number } | undefined
}

// Context fields that are the same for every request of one school on one route. A flag whose
// strategies and constraints read nothing else gives the same answer until the flag changes, and
// that answer is remembered: unleash-client re-cleans a constraint's whole value list on every
// evaluation (about 10 µs for a list of 500 schools), which the edge would pay per request.
const SCHOOL_LEVEL_FIELDS = new Set(['tenantId', 'cohort', 'route', 'appName', 'environment'])
const MAX_REMEMBERED_SCHOOLS_PER_ROUTE = 100_000

/** The whole decision of one flag for one school on one route. */
interface RememberedDecision {
  /**
   * The cohorts it was taken with, frozen (the registry's own array, or a copy): a school whose
   * cohorts change is decided afresh.
   */
  readonly cohorts: readonly string[]
  readonly enabled: boolean
  /** How many Unleash evaluations it took, replayed into Unleash's usage metrics. */
  readonly evaluations: number
}

interface RememberedFlag {
  /** The definition the decisions were taken from: another object means the flag changed. */
  readonly feature: FeatureInterface | undefined
  /**
   * route -> tenantId -> decision; undefined when the flag reads the visitor, the time or
   * segments. Route first: that map is small and stays in cache, and a lookup then touches one
   * large map instead of one small map per school.
   */
  readonly decisions: Map<string, Map<string, RememberedDecision>> | undefined
}

function dependsOnlyOnSchool (feature: FeatureInterface | undefined): boolean {
  if (feature === undefined || !feature.enabled) return true
  if (feature.impressionData === true || (feature.dependencies?.length ?? 0) > 0 || !Array.isArray(feature.strategies)) return false
  return feature.strategies.every((strategy) =>
    (strategy.name === 'default' || (strategy.name === 'flexibleRollout' && SCHOOL_LEVEL_FIELDS.has(String(strategy.parameters?.stickiness)))) &&
    (strategy.segments?.length ?? 0) === 0 &&
    (strategy.constraints ?? []).every((constraint) => SCHOOL_LEVEL_FIELDS.has(constraint.contextName)))
}

function sameCohorts (a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class Flags implements FlagReader {
  readonly source: string
  readonly #unleash: Unleash
  readonly #remembered = new Map<string, RememberedFlag>()
  readonly #logger: FlagsLogger
  readonly #keeper: FlagKeeper
  readonly #definitions: FlagSource
  #ready = false
  #lastConfirmedAt: number | undefined
  #outageSince: number | undefined
  #reloadFile: (() => void) | undefined
  #auth: { status: number, since: number, retries: number, loggedAt: number, timer: NodeJS.Timeout | undefined } | undefined
  #authFailures = 0
  #refreshIntervalMs = 1_000
  #closed = false
  #version = 0

  constructor (unleash: Unleash, source: string, logger: FlagsLogger, keeping: FlagKeeping = NO_KEEPING, staticContext: Context = {}) {
    this.#unleash = unleash
    this.source = source
    this.#logger = logger
    this.#definitions = {
      definition: (name) => unleash.getFeatureToggleDefinition(name),
      enhanced: () => unleash.getFeatureToggleDefinitions(true)
    }
    this.#keeper = new FlagKeeper({ ...keeping, source, logger, staticContext })
    unleash.on('ready', () => { this.#ready = true })
    unleash.on('changed', () => {
      this.#version++
      this.#remembered.clear()
      this.#keeper.update(this.#definitions)
    })
    // The client also emits 'changed' when it loads the bootstrap, before (or without) ever
    // reaching the server: that load confirms nothing about the source.
    unleash.on('changed', () => { if (answeredBySource(unleash)) this.#confirmed() })
    unleash.on('unchanged', () => this.#confirmed())
    // An 'error' event with no listener would throw and take the process down (for instance a
    // fetch that fails after destroy()); every error is handled here, and logged once per outage.
    unleash.on('error', (error: Error) => this.#failed(error))
    unleash.on('warn', () => {})
  }

  /** Flags from a file in Unleash's client-features format, re-read when it changes. */
  static async fromFile (path: string, logger: FlagsLogger, pollIntervalMs?: number, keeping?: FlagKeeping): Promise<Flags> {
    const repository = new FileFlagRepository({
      path,
      pollIntervalMs,
      onReload: (count) => logger.info({ flags: count, path }, 'flags file reloaded'),
      onInvalid: (error) => logger.error({ err: error.message, path }, 'flags file rejected, keeping the last good flags')
    })
    const unleash = new Unleash({
      appName: 'ficus',
      // Never contacted: the repository below replaces the server, and metrics are off.
      url: 'http://flags-file.invalid/',
      repository,
      disableMetrics: true,
      disableAutoStart: true,
      skipInstanceCountWarning: true
    })
    const flags = new Flags(unleash, `file ${path}`, logger, keeping, { appName: 'ficus', environment: 'default' })
    flags.#reloadFile = () => repository.reload()
    await unleash.start()
    // The repository emitted `ready` synchronously during start; unleash marks itself ready on it.
    flags.#ready = true
    return flags
  }

  /**
   * Flags from an Unleash server, polled every `refreshIntervalMs`. Resolves at once: readiness
   * comes later, from the first answer, the bootstrap file or the client's backup.
   */
  static fromServer (options: UnleashServerOptions, logger: FlagsLogger, keeping?: FlagKeeping): Flags {
    const bootstrap = options.bootstrapFile === undefined ? undefined : readBootstrap(options.bootstrapFile)
    const backup = new FileStorageProvider(options.backupDir)
    const unleash: Unleash = new Unleash({
      url: options.url,
      appName: options.appName,
      environment: options.environment,
      instanceId: options.instanceId,
      refreshInterval: options.refreshIntervalMs,
      customHeaders: { Authorization: options.apiToken },
      // The client's own file backup, keeping held route flags in it across restarts.
      storageProvider: {
        get: async (key: string) => {
          const content = await backup.get(key)
          // After the client has applied the content (or ignored it for a fresher answer).
          if (content !== undefined) {
            setImmediate(() => {
              flags.#keeper.learn(content.features, content.segments ?? [], flags.#definitions)
              flags.#version++
            })
          }
          return content
        },
        set: async (key: string, data: ClientFeaturesResponse): Promise<void> => await backup.set(key, flags.#keeper.withHeld(data))
      },
      ...(bootstrap === undefined ? {} : { bootstrap: { data: bootstrap.features, segments: bootstrap.segments }, bootstrapOverride: false }),
      skipInstanceCountWarning: true,
      disableAutoStart: true
    })
    const flags: Flags = new Flags(unleash, `unleash ${options.url}`, logger, keeping, { appName: options.appName, environment: options.environment })
    flags.#refreshIntervalMs = options.refreshIntervalMs
    unleash.start().catch((error: Error) => flags.#failed(error))
    return flags
  }

  isReady (): boolean {
    return this.#ready
  }

  /**
   * A school belongs to several cohorts and Unleash context values are single strings, so the
   * flag is evaluated once per cohort and is on when any evaluation is on: `cohort IN [pilot]`
   * matches every pilot school. Stickiness hashes `tenantId`, so the extra evaluations never
   * change a rollout's share. The first evaluation answers for nearly every request.
   */
  isEnabled (flag: string, context: FlagContext): boolean {
    if (!this.#ready) throw FlagErrors.FICUS_ERR_FLAGS_NOT_READY()
    let feature = this.#unleash.getFeatureToggleDefinition(flag)
    const held = feature === undefined ? this.#keeper.held(flag) : undefined
    if (held !== undefined) feature = held.feature
    let remembered = this.#remembered.get(flag)
    if (remembered === undefined || remembered.feature !== feature) {
      remembered = { feature, decisions: dependsOnlyOnSchool(feature) ? new Map() : undefined }
      this.#remembered.set(flag, remembered)
    }
    const decisions = remembered.decisions
    if (decisions === undefined) return this.#decide(flag, context, held).enabled
    let bySchool = decisions.get(context.route)
    if (bySchool === undefined) {
      bySchool = new Map()
      decisions.set(context.route, bySchool)
    }
    const cohorts = context.cohorts
    const known = bySchool.get(context.tenantId)
    if (known !== undefined && (known.cohorts === cohorts || sameCohorts(known.cohorts, cohorts))) {
      // Keeps Unleash's usage metrics what they would be without the memory.
      for (let i = 1; i < known.evaluations; i++) this.#unleash.count(flag, false)
      this.#unleash.count(flag, known.enabled)
      return known.enabled
    }
    const decision = this.#decide(flag, context, held)
    if (bySchool.size >= MAX_REMEMBERED_SCHOOLS_PER_ROUTE) bySchool.clear()
    bySchool.set(context.tenantId, { cohorts: Object.isFrozen(cohorts) ? cohorts : Object.freeze([...cohorts]), ...decision })
    return decision.enabled
  }

  #decide (flag: string, context: FlagContext, held: HeldFlag | undefined): { enabled: boolean, evaluations: number } {
    const cohorts = context.cohorts
    const unleashContext = toUnleashContext(context, cohorts[0])
    if (held !== undefined) return this.#decideHeld(flag, unleashContext, cohorts, held)
    if (this.#unleash.isEnabled(flag, unleashContext, false)) return { enabled: true, evaluations: 1 }
    for (let i = 1; i < cohorts.length; i++) {
      (unleashContext.properties as Record<string, string | undefined>).cohort = cohorts[i]
      if (this.#unleash.isEnabled(flag, unleashContext, false)) return { enabled: true, evaluations: i + 1 }
    }
    return { enabled: false, evaluations: Math.max(cohorts.length, 1) }
  }

  // The same evaluation on the held definition, counted in Unleash's usage metrics as usual.
  #decideHeld (flag: string, unleashContext: Context, cohorts: readonly string[], held: HeldFlag): { enabled: boolean, evaluations: number } {
    const withStatic = { ...this.#keeper.staticContext, ...unleashContext }
    for (let i = 0; i < Math.max(cohorts.length, 1); i++) {
      if (i > 0) (withStatic.properties as Record<string, string | undefined>).cohort = cohorts[i]
      const enabled = held.engine.isEnabled(flag, withStatic, () => false)
      this.#unleash.count(flag, enabled)
      if (enabled) return { enabled: true, evaluations: i + 1 }
    }
    return { enabled: false, evaluations: Math.max(cohorts.length, 1) }
  }

  isGone (flag: string): boolean {
    if (!this.#ready) throw FlagErrors.FICUS_ERR_FLAGS_NOT_READY()
    return this.#unleash.getFeatureToggleDefinition(flag) === undefined && this.#keeper.isGone(flag)
  }

  /** Changes whenever what definitions() returns may have changed. */
  get definitionsVersion (): number {
    return this.#version
  }

  /**
   * Everything isEnabled decides with, as plain data, so that the same definitions can be
   * evaluated by the same engine away from the event loop (the console's page worker): the
   * source's flags, the held definition of each route flag it stopped listing, their segments and
   * the static context. Undefined before flags are loaded.
   */
  definitions (): FlagDefinitions | undefined {
    if (!this.#ready) return undefined
    const segments = new Map<number, Segment>()
    for (const feature of this.#unleash.getFeatureToggleDefinitions(true)) {
      for (const strategy of feature.strategies ?? []) for (const segment of strategy.segments ?? []) if (segment !== undefined) segments.set(segment.id, segment)
    }
    const source = this.#keeper.withHeld({ features: this.#unleash.getFeatureToggleDefinitions(), segments: [...segments.values()] })
    return { version: this.#version, features: source.features, segments: source.segments ?? [], staticContext: this.#keeper.staticContext }
  }

  /** Re-reads the flags file now (SIGHUP); false when flags come from a server. */
  reload (): boolean {
    if (this.#reloadFile === undefined) return false
    this.#reloadFile()
    return true
  }

  /** Whether the flag source defines this flag at all (false before flags are loaded). */
  knows (flag: string): boolean {
    return this.#ready && this.#unleash.getFeatureToggleDefinition(flag) !== undefined
  }

  explain (flag: string, context: FlagContext): Explanation {
    if (!this.#ready) return { enabled: false, reason: 'flags are not loaded yet: no decision is taken' }
    const live = this.#unleash.getFeatureToggleDefinitions(true).find((candidate) => candidate.name === flag)
    const held = live === undefined ? this.#keeper.held(flag) : undefined
    const cohorts = context.cohorts.length === 0 ? [undefined] : context.cohorts
    const contexts: Context[] = cohorts.map((cohort) => ({ ...this.#keeper.staticContext, ...toUnleashContext(context, cohort) }))
    const explanation = explainFlag(live ?? held?.enhanced, contexts)
    if (held === undefined) return explanation
    const missing = this.#keeper.missing().find((entry) => entry.flag === flag)
    return { ...explanation, reason: `flag missing from ${this.source} since ${missing?.missingSince ?? '?'}: deciding with its last known definition; ${explanation.reason}` }
  }

  status (): FlagsStatus {
    return {
      ready: this.#ready,
      source: this.source,
      staleForMs: this.#lastConfirmedAt === undefined ? undefined : Date.now() - this.#lastConfirmedAt,
      sourceReachable: this.#outageSince === undefined,
      missingFlags: this.#keeper.missing(),
      authRejected: this.#auth === undefined ? undefined : { status: this.#auth.status, sinceMs: Date.now() - this.#auth.since, retries: this.#auth.retries }
    }
  }

  /** Times each route flag went missing, and times the server refused the token: for the metrics. */
  counts (): { missing: ReadonlyMap<string, number>, authFailures: number } {
    return { missing: this.#keeper.missingCounts(), authFailures: this.#authFailures }
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#auth?.timer)
    this.#unleash.destroy()
    // destroy() detaches the repository's listeners but does not abort a fetch in flight; when
    // that fetch fails, the repository emits 'error' with nobody listening and the process dies.
    const repository = (this.#unleash as unknown as { repository?: { on?: (event: string, listener: () => void) => void } }).repository
    repository?.on?.('error', () => {})
  }

  #confirmed (): void {
    this.#lastConfirmedAt = Date.now()
    if (this.#auth !== undefined) {
      this.#logger.info({ source: this.source, rejectedForMs: Date.now() - this.#auth.since, retries: this.#auth.retries }, 'flag source accepts the API token again')
      clearTimeout(this.#auth.timer)
      this.#auth = undefined
    }
    if (this.#outageSince !== undefined) {
      this.#logger.info({ source: this.source, outageMs: Date.now() - this.#outageSince }, 'flag source reachable again')
      this.#outageSince = undefined
    }
  }

  /**
   * unleash-client stops polling for good on 401/403 (a token revoked, or not valid yet). Here a
   * refused token is a fault like any other: the last flags stay, ficus says loudly that they are
   * stale, and asks again with a backoff, so that fixing the token on the server is enough.
   */
  #tokenRefused (status: number): void {
    if (this.#closed) return
    this.#authFailures++
    const now = Date.now()
    const auth = this.#auth ??= { status, since: now, retries: 0, loggedAt: 0, timer: undefined }
    auth.status = status
    if (now - auth.loggedAt >= AUTH_LOG_EVERY_MS) {
      auth.loggedAt = now
      this.#logger.error({ source: this.source, status, rejectedForMs: now - auth.since, retries: auth.retries },
        'flag source refuses the API token (UNLEASH_API_TOKEN): flags are stale, retrying with backoff')
    }
    const delay = Math.min(this.#refreshIntervalMs * 2 ** Math.min(auth.retries, 16), AUTH_RETRY_MAX_MS)
    clearTimeout(auth.timer)
    auth.timer = setTimeout(() => {
      auth.retries++
      const repository = (this.#unleash as unknown as { repository?: PollingRepository }).repository
      // Its refusals count as failures that would stretch every later poll once the token works.
      const polling = repository?.fetcher?.pollingFetcher
      if (polling !== undefined && typeof polling.failures === 'number') polling.failures = 0
      repository?.fetch?.().catch((error: Error) => this.#failed(error))
    }, delay)
    auth.timer.unref()
  }

  #failed (error: Error): void {
    const refused = /responded (401|403)\b/.exec(error.message)
    if (refused !== null) this.#tokenRefused(Number(refused[1]))
    if (this.#outageSince !== undefined) return
    this.#outageSince = Date.now()
    this.#logger.warn({ source: this.source, err: error.message }, 'flag source unreachable: keeping the last known flags')
  }
}

/** The parts of unleash-client's repository that restart polling after a refused token. */
interface PollingRepository {
  fetch?: () => Promise<void>
  fetcher?: { pollingFetcher?: { failures?: number } }
}

/** False while a server-backed client has had no answer from its server yet (the file repository has no such state). */
function answeredBySource (unleash: Unleash): boolean {
  const repository = (unleash as unknown as { repository?: { connected?: boolean } }).repository
  return repository?.connected !== false
}

function readBootstrap (path: string): ClientFeaturesResponse {
  const json: unknown = JSON.parse(readFileSync(path, 'utf8'))
  parseClientFeatures(json)
  return json as ClientFeaturesResponse
}
