// A JSON file that operators edit by hand while ficus runs (flags, the tenant list). It is
// re-read when it changes; a broken edit keeps the last good content, so a typo never takes
// routing down, and the reason is reported once per bad edit.
import { readFileSync, statSync, type Stats } from 'node:fs'

export const DEFAULT_POLL_INTERVAL_MS = 500

export interface WatchedJsonFileOptions<T> {
  readonly path: string
  /** Turns parsed JSON into the typed content, or throws an Error that says what is wrong. */
  readonly parse: (json: unknown) => T
  readonly onChange: (content: T) => void
  readonly onInvalid: (error: Error) => void
  readonly pollIntervalMs?: number
}

export class WatchedJsonFile<T> {
  readonly #options: WatchedJsonFileOptions<T>
  #timer: NodeJS.Timeout | undefined
  #lastSignature = ''

  constructor (options: WatchedJsonFileOptions<T>) {
    this.#options = options
  }

  /** Reads the file once; throws when the first read fails, since there is nothing to fall back on. */
  load (): T {
    const { content, signature } = this.#read()
    this.#lastSignature = signature
    return content
  }

  /**
   * Polls rather than using fs.watch: editors replace files by rename and containers mount
   * config through symlinks, both of which fs.watch loses track of.
   */
  watch (): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => this.#check(), this.#options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS)
    this.#timer.unref()
  }

  /**
   * Re-reads the file now, changed or not (an operator's SIGHUP): good content replaces the last,
   * bad content is reported and the last good content stays.
   */
  reload (): void {
    try {
      const { content, signature } = this.#read()
      this.#lastSignature = signature
      this.#options.onChange(content)
    } catch (error) {
      this.#options.onInvalid(error as Error)
    }
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #check (): void {
    let stats: Stats
    try {
      stats = statSync(this.#options.path)
    } catch (error) {
      return this.#invalid(`stat:${(error as NodeJS.ErrnoException).code ?? ''}`, error as Error)
    }
    if (signatureOf(stats) === this.#lastSignature) return
    try {
      const { content, signature } = this.#read()
      this.#lastSignature = signature
      this.#options.onChange(content)
    } catch (error) {
      this.#invalid(signatureOf(stats), error as Error)
    }
  }

  // A bad edit is reported once, not on every poll until it is fixed.
  #invalid (signature: string, error: Error): void {
    if (signature === this.#lastSignature) return
    this.#lastSignature = signature
    this.#options.onInvalid(error)
  }

  #read (): { content: T, signature: string } {
    const { path, parse } = this.#options
    const signature = signatureOf(statSync(path))
    const text = readFileSync(path, 'utf8')
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      throw new Error(`${path} is not valid JSON: ${(error as Error).message}`)
    }
    try {
      return { content: parse(json), signature }
    } catch (error) {
      throw new Error(`${path}: ${(error as Error).message}`)
    }
  }
}

function signatureOf (stats: Stats): string {
  return `${stats.mtimeMs}:${stats.size}:${stats.ino}`
}
