// A circuit breaker per key (one instance per migrated route, keyed by school): a school whose
// requests on the route keep failing goes back to legacy for a cool-down, then one probe request
// decides whether it stays there. Memory is bounded: at most `maxSchools` keys are tracked (the
// least recently seen closed ones are forgotten first), each a few counters.
import type { BreakerState, BreakerTransition } from '../core/safety-events.ts'
import type { BreakerConfig } from './config.ts'

export interface KeyedBreakerOptions extends BreakerConfig {
  readonly onTransition?: (transition: BreakerTransition) => void
  /** Milliseconds; injectable for tests. */
  readonly now?: () => number
}

// The window is kept as this many buckets: it slides by a tenth of its length.
const BUCKETS = 10
const CLOSED = 0
const OPEN = 1
const HALF_OPEN = 2
const STATE_NAMES: readonly BreakerState[] = ['closed', 'open', 'half-open']

interface Entry {
  state: number
  /** Open: when the cool-down ends. Half-open: when the probe in flight is given up on. */
  until: number
  probing: boolean
  /** Index (time / bucket length) of the newest bucket written. */
  bucket: number
  /** [requests, failures] per bucket, ring-indexed by bucket number. */
  readonly counts: Uint32Array
}

export class KeyedBreaker {
  readonly #entries = new Map<string, Entry>()
  readonly #config: BreakerConfig
  readonly #bucketMs: number
  readonly #onTransition: ((transition: BreakerTransition) => void) | undefined
  readonly #now: () => number
  #open = 0
  #halfOpen = 0

  constructor (options: KeyedBreakerOptions) {
    this.#config = options
    this.#bucketMs = Math.max(1, Math.ceil(options.windowMs / BUCKETS))
    this.#onTransition = options.onTransition
    this.#now = options.now ?? Date.now
  }

  /**
   * Whether a request for `key` may go to the new handler. Closed: yes. Open: no until the
   * cool-down ends, then exactly one probe is let through (half-open) until it is recorded.
   */
  allow (key: string): boolean {
    const entry = this.#entries.get(key)
    if (entry === undefined || entry.state === CLOSED) return true
    const now = this.#now()
    if (now < entry.until) return false
    if (entry.state === OPEN) this.#move(entry, key, HALF_OPEN, 0, 0)
    // A probe that never came back (client gone) does not keep the school on legacy forever.
    entry.until = now + this.#config.coolDownMs
    entry.probing = true
    return true
  }

  /** Records the outcome of a request `allow` let through. */
  record (key: string, failed: boolean): void {
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      entry = this.#create(key)
    } else {
      // Most recently seen last: eviction takes the oldest first.
      this.#entries.delete(key)
      this.#entries.set(key, entry)
    }
    if (entry.state === HALF_OPEN) {
      if (!entry.probing) return
      entry.probing = false
      if (failed) {
        entry.until = this.#now() + this.#config.coolDownMs
        this.#move(entry, key, OPEN, 0, 0)
      } else {
        entry.counts.fill(0)
        this.#move(entry, key, CLOSED, 0, 0)
      }
      return
    }
    if (entry.state === OPEN) return
    const now = this.#now()
    const index = this.#advance(entry, now)
    const slot = (index % BUCKETS) * 2
    entry.counts[slot] = (entry.counts[slot] ?? 0) + 1
    if (!failed) return
    entry.counts[slot + 1] = (entry.counts[slot + 1] ?? 0) + 1
    let requests = 0
    let failures = 0
    for (let i = 0; i < BUCKETS * 2; i += 2) {
      requests += entry.counts[i] ?? 0
      failures += entry.counts[i + 1] ?? 0
    }
    if (requests >= this.#config.minRequests && failures / requests >= this.#config.errorRate) {
      entry.until = now + this.#config.coolDownMs
      this.#move(entry, key, OPEN, requests, failures)
    }
  }

  state (key: string): BreakerState {
    const entry = this.#entries.get(key)
    return entry === undefined ? 'closed' : STATE_NAMES[entry.state] as BreakerState
  }

  get openCount (): number {
    return this.#open
  }

  get halfOpenCount (): number {
    return this.#halfOpen
  }

  get trackedCount (): number {
    return this.#entries.size
  }

  /** Keys that are not closed, with their state and (open) the milliseconds left of the cool-down. */
  notClosed (): Array<{ key: string, state: BreakerState, coolDownLeftMs: number }> {
    const now = this.#now()
    const found: Array<{ key: string, state: BreakerState, coolDownLeftMs: number }> = []
    for (const [key, entry] of this.#entries) {
      if (entry.state === CLOSED) continue
      found.push({ key, state: STATE_NAMES[entry.state] as BreakerState, coolDownLeftMs: entry.state === OPEN ? Math.max(0, entry.until - now) : 0 })
    }
    return found
  }

  /** Clears the buckets that fell out of the window; returns the current bucket number. */
  #advance (entry: Entry, now: number): number {
    const index = Math.floor(now / this.#bucketMs)
    const gap = index - entry.bucket
    if (gap > 0) {
      const clear = Math.min(gap, BUCKETS)
      for (let i = 1; i <= clear; i++) {
        const slot = ((entry.bucket + i) % BUCKETS) * 2
        entry.counts[slot] = 0
        entry.counts[slot + 1] = 0
      }
      entry.bucket = index
    }
    return entry.bucket
  }

  #create (key: string): Entry {
    if (this.#entries.size >= this.#config.maxSchools) this.#evictOne()
    const entry: Entry = { state: CLOSED, until: 0, probing: false, bucket: Math.floor(this.#now() / this.#bucketMs), counts: new Uint32Array(BUCKETS * 2) }
    this.#entries.set(key, entry)
    return entry
  }

  /** Forgets the least recently seen closed key; an open one only when every key is open. */
  #evictOne (): void {
    let victim: string | undefined
    for (const [key, entry] of this.#entries) {
      victim ??= key
      if (entry.state === CLOSED) { victim = key; break }
    }
    if (victim === undefined) return
    const entry = this.#entries.get(victim)
    if (entry !== undefined && entry.state !== CLOSED) this.#count(entry.state, -1)
    this.#entries.delete(victim)
  }

  #move (entry: Entry, key: string, to: number, requests: number, failures: number): void {
    const from = entry.state
    if (from === to) return
    this.#count(from, -1)
    this.#count(to, 1)
    entry.state = to
    this.#onTransition?.({ key, from: STATE_NAMES[from] as BreakerState, to: STATE_NAMES[to] as BreakerState, requests, failures })
  }

  #count (state: number, delta: number): void {
    if (state === OPEN) this.#open += delta
    else if (state === HALF_OPEN) this.#halfOpen += delta
  }
}
