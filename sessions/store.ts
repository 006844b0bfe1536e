// Where session records live, as opaque bytes in the legacy's format. Two implementations:
// RedisSessionStore (shared with legacy) and MemorySessionStore (embedded, single process).

export type CompareAndSetResult =
  | { readonly outcome: 'written' }
  /** The record changed since it was read; `current` is what it holds now. */
  | { readonly outcome: 'changed', readonly current: Buffer }
  /** The record no longer exists (logged out or expired); nothing was written. */
  | { readonly outcome: 'gone' }

export const WRITTEN: CompareAndSetResult = Object.freeze({ outcome: 'written' })
export const GONE: CompareAndSetResult = Object.freeze({ outcome: 'gone' })

export interface SessionStore {
  /** For logs: the kind of store and where (never a password). */
  readonly description: string
  /** The record, in one round trip; undefined when there is none. */
  get (id: string): Promise<Buffer | undefined>
  /**
   * Replaces the record with `next` only if it still holds `expected`, keeping its TTL (or
   * resetting it, when the store is configured to). Never creates a record.
   */
  compareAndSet (id: string, expected: Buffer, next: Buffer): Promise<CompareAndSetResult>
  close (): Promise<void>
}

/** The little a store says about itself; a pino logger fits. Never given a session id. */
export interface SessionLogger {
  info (message: string): void
  warn (message: string): void
}

export const SILENT_LOGGER: SessionLogger = Object.freeze({ info () {}, warn () {} })
