// Which session cookies may reach legacy. Deny by default: the session cookie goes to legacy only
// when ficus has established that it names a record of the request's school, or a record bound to
// no school yet (a visitor before sign-in). Everything else carrying the cookie's name is removed:
// several values, spellings ficus does not read (cookies.ts), bad or non-canonical signatures,
// unsigned ids when ids are signed, ids with no record (legacy would create one under the id the
// client chose), records of another school or unreadable ones.
// Cost: a request without the session cookie does no I/O and allocates nothing; a bound id seen
// before costs a map look-up; a new id costs one store read, after which its school is remembered
// (never the session's contents). An id with no record is remembered for a short while. A record
// bound to no school is read again on every request: the next sign-in, in any process, binds it.
import type { SessionCodec } from './codecs.ts'
import { SessionCookie } from './cookies.ts'
import { sessionIdFromValue } from './session.ts'
import type { SessionIdSigner } from './signer.ts'
import type { SessionLogger, SessionStore } from './store.ts'
import { SILENT_LOGGER } from './store.ts'

export const DEFAULT_BINDING_CACHE_SIZE = 10_000
/** How long an id with no record is answered from memory (stripped) before the store is asked again. */
export const DEFAULT_ABSENT_TTL_MS = 5_000

export interface SessionBindingsOptions {
  readonly store: SessionStore
  readonly codec: SessionCodec
  readonly signer: SessionIdSigner | undefined
  readonly cookieName: string
  readonly tenantKey: string
  /** How many id → school bindings (and, apart, ids with no record) are remembered; the least recently used go first. */
  readonly cacheSize?: number
  readonly absentTtlMs?: number
  readonly log?: SessionLogger
  /** Injected for tests. */
  readonly now?: () => number
}

/** What the store says about an id: the school it is bound to, or why it may not pass. */
type Lookup = { readonly kind: 'bound', readonly tenantId: string } | { readonly kind: 'unbound' } | { readonly kind: 'refused' }
const UNBOUND: Lookup = Object.freeze({ kind: 'unbound' })
const REFUSED: Lookup = Object.freeze({ kind: 'refused' })

export class SessionBindings {
  readonly #store: SessionStore
  readonly #codec: SessionCodec
  readonly #signer: SessionIdSigner | undefined
  readonly #cookie: SessionCookie
  readonly #tenantKey: string
  readonly #cacheSize: number
  readonly #absentTtlMs: number
  readonly #log: SessionLogger
  readonly #now: () => number
  readonly #cache = new Map<string, string>()
  /** Ids with no record, and until when that answer stands. */
  readonly #absent = new Map<string, number>()
  readonly #inFlight = new Map<string, Promise<Lookup>>()
  #lookups = 0

  constructor (options: SessionBindingsOptions) {
    const cacheSize = options.cacheSize ?? DEFAULT_BINDING_CACHE_SIZE
    if (!Number.isSafeInteger(cacheSize) || cacheSize < 1) throw new TypeError('SessionBindings cacheSize must be a positive integer')
    const absentTtlMs = options.absentTtlMs ?? DEFAULT_ABSENT_TTL_MS
    if (!Number.isSafeInteger(absentTtlMs) || absentTtlMs < 0) throw new TypeError('SessionBindings absentTtlMs must be a whole number of ms')
    this.#store = options.store
    this.#codec = options.codec
    this.#signer = options.signer
    this.#cookie = new SessionCookie(options.cookieName)
    this.#tenantKey = options.tenantKey
    this.#cacheSize = cacheSize
    this.#absentTtlMs = absentTtlMs
    this.#log = options.log ?? SILENT_LOGGER
    this.#now = options.now ?? Date.now
  }

  /** Store reads made so far to learn bindings. */
  get lookups (): number {
    return this.#lookups
  }

  /** Bindings remembered now. */
  get size (): number {
    return this.#cache.size
  }

  /**
   * Records a binding seen elsewhere (a handler's load). A binding never changes for an id, so
   * it is kept until evicted. Only definite bindings are kept: a record that names no school yet
   * may be bound by the next sign-in.
   */
  remember (id: string, tenantId: string): void {
    this.#absent.delete(id)
    if (this.#cache.has(id)) return
    if (this.#cache.size >= this.#cacheSize) {
      const oldest = this.#cache.keys().next()
      if (oldest.done !== true) this.#cache.delete(oldest.value)
    }
    this.#cache.set(id, tenantId)
  }

  #cached (id: string): string | undefined {
    const tenantId = this.#cache.get(id)
    if (tenantId !== undefined) {
      this.#cache.delete(id)
      this.#cache.set(id, tenantId)
    }
    return tenantId
  }

  #knownAbsent (id: string): boolean {
    const until = this.#absent.get(id)
    if (until === undefined) return false
    if (until > this.#now()) return true
    this.#absent.delete(id)
    return false
  }

  #rememberAbsent (id: string): void {
    if (this.#absentTtlMs === 0) return
    this.#absent.delete(id)
    if (this.#absent.size >= this.#cacheSize) {
      const oldest = this.#absent.keys().next()
      if (oldest.done !== true) this.#absent.delete(oldest.value)
    }
    this.#absent.set(id, this.#now() + this.#absentTtlMs)
  }

  /**
   * Whether the session cookie must be removed before this request goes to legacy (see the top
   * of this file). `tenantId` undefined (a request for no school): only a record bound to no school
   * passes. Synchronous when the answer needs no I/O, a Promise otherwise; never rejects (a store
   * that cannot answer means the cookie cannot be vouched for, so it goes).
   */
  mustStrip (cookieHeader: string | undefined, tenantId: string | undefined): boolean | Promise<boolean> {
    const value = this.#cookie.read(cookieHeader)
    if (value === undefined) return false
    if (typeof value !== 'string') return true
    const id = sessionIdFromValue(this.#signer, value)
    if (id === undefined) return true
    const owner = this.#cached(id)
    if (owner !== undefined) return owner !== tenantId
    if (this.#knownAbsent(id)) return true
    return this.#lookUp(id).then((found) => found.kind === 'unbound' ? false : found.kind === 'refused' || found.tenantId !== tenantId)
  }

  /**
   * The Cookie header to send to legacy: the same string when the session cookie may pass (or
   * there is none), else the header without it (undefined when nothing else is left).
   */
  legacyCookieHeader (cookieHeader: string | undefined, tenantId: string | undefined): string | undefined | Promise<string | undefined> {
    const verdict = this.mustStrip(cookieHeader, tenantId)
    if (verdict === false || cookieHeader === undefined) return cookieHeader
    if (verdict === true) return this.#cookie.remove(cookieHeader)
    return verdict.then((strip) => strip ? this.#cookie.remove(cookieHeader) : cookieHeader)
  }

  #lookUp (id: string): Promise<Lookup> {
    let pending = this.#inFlight.get(id)
    if (pending === undefined) {
      pending = this.#read(id).finally(() => this.#inFlight.delete(id))
      this.#inFlight.set(id, pending)
    }
    return pending
  }

  async #read (id: string): Promise<Lookup> {
    this.#lookups++
    let bytes: Buffer | undefined
    try {
      bytes = await this.#store.get(id)
    } catch (err) {
      this.#log.warn(`session binding unknown, session cookie removed for legacy: ${err instanceof Error ? err.message : 'error'}`)
      return REFUSED
    }
    if (bytes === undefined) {
      this.#rememberAbsent(id)
      return REFUSED
    }
    let owner: unknown
    try {
      const data = this.#codec.decode(bytes)
      owner = Object.hasOwn(data, this.#tenantKey) ? data[this.#tenantKey] : undefined
    } catch {
      // Legacy would replace an unreadable record under the same id: not a session to vouch for.
      return REFUSED
    }
    if (owner === undefined) return UNBOUND
    if (typeof owner !== 'string' || owner === '') return REFUSED
    this.remember(id, owner)
    return { kind: 'bound', tenantId: owner }
  }
}
