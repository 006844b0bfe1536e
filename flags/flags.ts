// The flag reader the edge asks on every migrated route: synchronous, answered from memory by
// unleash-client's engine, fed either by a file or by an Unleash server. It refuses to answer
// until flags are loaded, because the "everything off" state of an unloaded client would
// silently move every school back to legacy.
import { readFileSync } from 'node:fs'
import { Unleash, type ClientFeaturesResponse, type Context } from 'unleash-client'
import { FileFlagRepository, parseClientFeatures } from './file-repository.ts'
import { toUnleashContext, type FlagContext } from './flag-context.ts'
import { explainFlag, type Explanation } from './explain.ts'
import { FlagErrors } from './errors.ts'

export interface FlagReader {
  isReady (): boolean
  /** Throws FICUS_ERR_FLAGS_NOT_READY rather than guessing when flags are not loaded yet. */
  isEnabled (flag: string, context: FlagContext): boolean
}

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
}

export class Flags implements FlagReader {
  readonly source: string
  readonly #unleash: Unleash
  readonly #logger: FlagsLogger
  #ready = false
  #lastConfirmedAt: number | undefined
  #outageSince: number | undefined

  constructor (unleash: Unleash, source: string, logger: FlagsLogger) {
    this.#unleash = unleash
    this.source = source
    this.#logger = logger
    unleash.on('ready', () => { this.#ready = true })
    unleash.on('changed', () => this.#confirmed())
    unleash.on('unchanged', () => this.#confirmed())
    // An 'error' event with no listener would throw and take the process down (for instance a
    // fetch that fails after destroy()); every error is handled here, and logged once per outage.
    unleash.on('error', (error: Error) => this.#failed(error))
    unleash.on('warn', () => {})
  }

  /** Flags from a file in Unleash's client-features format, re-read when it changes. */
  static async fromFile (path: string, logger: FlagsLogger, pollIntervalMs?: number): Promise<Flags> {
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
    const flags = new Flags(unleash, `file ${path}`, logger)
    await unleash.start()
    // The repository emitted `ready` synchronously during start; unleash marks itself ready on it.
    flags.#ready = true
    return flags
  }

  /**
   * Flags from an Unleash server, polled every `refreshIntervalMs`. Resolves at once: readiness
   * comes later, from the first answer, the bootstrap file or the client's backup.
   */
  static fromServer (options: UnleashServerOptions, logger: FlagsLogger): Flags {
    const bootstrap = options.bootstrapFile === undefined ? undefined : readBootstrap(options.bootstrapFile)
    const unleash = new Unleash({
      url: options.url,
      appName: options.appName,
      environment: options.environment,
      instanceId: options.instanceId,
      refreshInterval: options.refreshIntervalMs,
      customHeaders: { Authorization: options.apiToken },
      backupPath: options.backupDir,
      ...(bootstrap === undefined ? {} : { bootstrap: { data: bootstrap.features, segments: bootstrap.segments }, bootstrapOverride: false }),
      skipInstanceCountWarning: true,
      disableAutoStart: true
    })
    const flags = new Flags(unleash, `unleash ${options.url}`, logger)
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
    const cohorts = context.cohorts
    const unleashContext = toUnleashContext(context, cohorts[0])
    if (this.#unleash.isEnabled(flag, unleashContext, false)) return true
    for (let i = 1; i < cohorts.length; i++) {
      (unleashContext.properties as Record<string, string | undefined>).cohort = cohorts[i]
      if (this.#unleash.isEnabled(flag, unleashContext, false)) return true
    }
    return false
  }

  explain (flag: string, context: FlagContext): Explanation {
    if (!this.#ready) return { enabled: false, reason: 'flags are not loaded yet: no decision is taken' }
    const feature = this.#unleash.getFeatureToggleDefinitions(true).find((candidate) => candidate.name === flag)
    const cohorts = context.cohorts.length === 0 ? [undefined] : context.cohorts
    const contexts: Context[] = cohorts.map((cohort) => toUnleashContext(context, cohort))
    return explainFlag(feature, contexts)
  }

  status (): FlagsStatus {
    return {
      ready: this.#ready,
      source: this.source,
      staleForMs: this.#lastConfirmedAt === undefined ? undefined : Date.now() - this.#lastConfirmedAt,
      sourceReachable: this.#outageSince === undefined
    }
  }

  async close (): Promise<void> {
    this.#unleash.destroy()
  }

  #confirmed (): void {
    this.#lastConfirmedAt = Date.now()
    if (this.#outageSince !== undefined) {
      this.#logger.info({ source: this.source, outageMs: Date.now() - this.#outageSince }, 'flag source reachable again')
      this.#outageSince = undefined
    }
  }

  #failed (error: Error): void {
    if (this.#outageSince !== undefined) return
    this.#outageSince = Date.now()
    this.#logger.warn({ source: this.source, err: error.message }, 'flag source unreachable: keeping the last known flags')
  }
}

function readBootstrap (path: string): ClientFeaturesResponse {
  const json: unknown = JSON.parse(readFileSync(path, 'utf8'))
  parseClientFeatures(json)
  return json as ClientFeaturesResponse
}
