// The flag reader the edge asks on every migrated route: synchronous, answered from memory by
// unleash-client's engine. It refuses to answer until flags are loaded, because the "everything
// off" state of an unloaded client would silently move every school back to legacy.
import { Unleash } from 'unleash-client'
import { FileFlagRepository } from './file-repository.ts'
import { toUnleashContext, type FlagContext } from './flag-context.ts'
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

export class Flags implements FlagReader {
  readonly source: string
  readonly #unleash: Unleash
  #ready = false

  constructor (unleash: Unleash, source: string) {
    this.#unleash = unleash
    this.source = source
    unleash.on('ready', () => { this.#ready = true })
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
    const flags = new Flags(unleash, `file ${path}`)
    await unleash.start()
    // The repository emitted `ready` synchronously during start; unleash marks itself ready on it.
    flags.#ready = true
    return flags
  }

  isReady (): boolean {
    return this.#ready
  }

  isEnabled (flag: string, context: FlagContext): boolean {
    if (!this.#ready) throw FlagErrors.FICUS_ERR_FLAGS_NOT_READY()
    return this.#unleash.isEnabled(flag, toUnleashContext(context), false)
  }

  async close (): Promise<void> {
    this.#unleash.destroy()
  }
}
