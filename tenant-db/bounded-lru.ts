// At most `max` open resources (pools, embedded databases), one per key, opened on first use.
// When the cap is reached, the least recently used idle one is closed to make room; when none is
// idle, callers wait (bounded by their deadline) for one to become idle. A resource taken out of
// service still counts against the cap until it has closed, so the number of server connections
// never exceeds max x pool size, even while pools are being replaced.
import { TenantDbErrors } from './errors.ts'

export interface LruEntry<R> {
  readonly key: string
  /** Identifies the configuration the resource was opened with (e.g. its URL). */
  readonly version: string
  readonly resource: R
  /** Leases out now; the entry is idle at 0. */
  active: number
  retired: boolean
}

export interface BoundedLruOptions<R> {
  readonly max: number
  readonly open: (key: string, version: string) => R
  readonly close: (resource: R) => Promise<void>
  /** Whether an idle resource may be closed to make room (in-memory databases may not). */
  readonly evictable?: (resource: R) => boolean
  /** A close that takes longer is given up on, so a hung server cannot hold a slot forever. */
  readonly closeTimeoutMs: number
  readonly onCloseError?: (error: unknown) => void
}

interface Waiter {
  readonly wake: () => void
}

export class BoundedLru<R> {
  readonly #options: BoundedLruOptions<R>
  // Map iteration order is insertion order: re-inserting on use keeps the least recent first.
  readonly #entries = new Map<string, LruEntry<R>>()
  readonly #closings = new Set<Promise<void>>()
  #retiredCount = 0
  #waiters: Waiter[] = []
  #closed = false

  constructor (options: BoundedLruOptions<R>) {
    if (!Number.isSafeInteger(options.max) || options.max < 1) throw new RangeError(`max must be a positive integer, got ${options.max}`)
    this.#options = options
  }

  get open (): number { return this.#entries.size }
  get closing (): number { return this.#retiredCount }
  get waiting (): number { return this.#waiters.length }
  get busy (): number {
    let busy = 0
    for (const entry of this.#entries.values()) if (entry.active > 0) busy++
    return busy
  }

  /** A lease on the resource for `key`; pair every call with `release`. */
  async acquire (key: string, version: string, timeoutMs: number): Promise<LruEntry<R>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.#closed) throw TenantDbErrors.FICUS_ERR_TENANT_DB_CLOSED()
      const entry = this.#entries.get(key)
      if (entry !== undefined) {
        if (entry.version === version) {
          this.#entries.delete(key)
          this.#entries.set(key, entry)
          entry.active++
          return entry
        }
        this.#retire(entry)
        continue
      }
      if (this.#entries.size + this.#retiredCount < this.#options.max) {
        const created: LruEntry<R> = { key, version, resource: this.#options.open(key, version), active: 1, retired: false }
        this.#entries.set(key, created)
        return created
      }
      const victim = this.#leastRecentlyUsedIdle()
      if (victim !== undefined) this.#retire(victim)
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        throw TenantDbErrors.FICUS_ERR_TENANT_DB_BUSY(`${this.#options.max} pools open, none idle within ${timeoutMs} ms`)
      }
      await this.#waitForChange(remaining)
    }
  }

  release (entry: LruEntry<R>): void {
    entry.active--
    if (entry.active > 0) return
    if (entry.retired) this.#finishClose(entry)
    else this.#wakeAll()
  }

  /**
   * Closes every resource (those in use once released) and refuses new leases. Gives up waiting
   * after `closeTimeoutMs`: a lease that is never released (work that ignores its cancellation)
   * or a hung server cannot hold shutdown open; whatever is left goes with the process.
   */
  async close (): Promise<void> {
    this.#closed = true
    for (const entry of [...this.#entries.values()]) this.#retire(entry)
    this.#wakeAll()
    const deadline = Date.now() + this.#options.closeTimeoutMs
    while (this.#closings.size > 0 || this.#retiredCount > 0) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) return
      await this.#waitForChange(remaining)
    }
  }

  #leastRecentlyUsedIdle (): LruEntry<R> | undefined {
    const evictable = this.#options.evictable
    for (const entry of this.#entries.values()) {
      if (entry.active === 0 && (evictable === undefined || evictable(entry.resource))) return entry
    }
    return undefined
  }

  #retire (entry: LruEntry<R>): void {
    if (entry.retired) return
    entry.retired = true
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key)
    this.#retiredCount++
    if (entry.active === 0) this.#finishClose(entry)
  }

  #finishClose (entry: LruEntry<R>): void {
    let timer: NodeJS.Timeout | undefined
    const gaveUp = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#options.closeTimeoutMs) })
    const closing = Promise.race([
      this.#options.close(entry.resource).catch((error: unknown) => this.#options.onCloseError?.(error)),
      gaveUp
    ]).finally(() => {
      clearTimeout(timer)
      this.#closings.delete(closing)
      this.#retiredCount--
      this.#wakeAll()
    })
    this.#closings.add(closing)
  }

  #waitForChange (timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter: Waiter = {
        wake: () => {
          clearTimeout(timer)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((other) => other !== waiter)
        resolve()
      }, timeoutMs)
      this.#waiters.push(waiter)
    })
  }

  // Every waiter re-checks in arrival order; those that find no room wait again.
  #wakeAll (): void {
    if (this.#waiters.length === 0) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const waiter of waiters) waiter.wake()
  }
}
