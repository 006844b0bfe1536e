import { randomUUID } from 'node:crypto'
import type { CompareAndSetResult, SessionStore } from './store.ts'
import { GONE, WRITTEN } from './store.ts'

interface Entry {
  bytes: Buffer
  /** Epoch ms, or undefined for a record that does not expire. */
  expiresAt: number | undefined
}

/** Expired records are swept every this many writes, so an idle map does not keep them forever. */
const SWEEP_EVERY_WRITES = 1024

export interface MemorySessionStoreOptions {
  /** Reset each written record to this lifetime; undefined keeps the record's own expiry. */
  readonly ttlSeconds?: number
  /** Injected for tests. */
  readonly now?: () => number
}

/**
 * The embedded default when no REDIS_URL is set: records live in this process only, so a
 * second ficus process (or a legacy app elsewhere) does not see them.
 */
export class MemorySessionStore implements SessionStore {
  readonly description = 'memory (in-process, single process only)'
  readonly #entries = new Map<string, Entry>()
  readonly #ttlMs: number | undefined
  readonly #now: () => number
  #writes = 0

  constructor (options: MemorySessionStoreOptions = {}) {
    this.#ttlMs = options.ttlSeconds === undefined ? undefined : options.ttlSeconds * 1000
    this.#now = options.now ?? Date.now
  }

  #live (id: string): Entry | undefined {
    const entry = this.#entries.get(id)
    if (entry === undefined) return undefined
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.#now()) {
      this.#entries.delete(id)
      return undefined
    }
    return entry
  }

  async get (id: string): Promise<Buffer | undefined> {
    return this.#live(id)?.bytes
  }

  async compareAndSet (id: string, expected: Buffer, next: Buffer): Promise<CompareAndSetResult> {
    const entry = this.#live(id)
    if (entry === undefined) return GONE
    if (!entry.bytes.equals(expected)) return { outcome: 'changed', current: entry.bytes }
    entry.bytes = next
    if (this.#ttlMs !== undefined) entry.expiresAt = this.#now() + this.#ttlMs
    this.#counted()
    return WRITTEN
  }

  /** Stores a record under a server-chosen id (what a sign-in does); ttlMs undefined = no expiry. */
  put (id: string, bytes: Buffer, ttlMs?: number): void {
    this.#entries.set(id, { bytes, expiresAt: ttlMs === undefined ? undefined : this.#now() + ttlMs })
    this.#counted()
  }

  /** Stores a new record under a fresh random id and returns the id. */
  create (bytes: Buffer, ttlMs?: number): string {
    const id = randomUUID()
    this.put(id, bytes, ttlMs)
    return id
  }

  delete (id: string): void {
    this.#entries.delete(id)
  }

  /** Remaining lifetime in ms: -2 when absent, -1 when it does not expire (as Redis PTTL). */
  pttl (id: string): number {
    const entry = this.#live(id)
    if (entry === undefined) return -2
    return entry.expiresAt === undefined ? -1 : entry.expiresAt - this.#now()
  }

  get size (): number {
    return this.#entries.size
  }

  #counted (): void {
    this.#writes++
    if (this.#writes % SWEEP_EVERY_WRITES !== 0) return
    const now = this.#now()
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.#entries.delete(id)
    }
  }

  async close (): Promise<void> {
    this.#entries.clear()
  }
}
