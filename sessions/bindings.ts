// Which school a session id belongs to, for requests that go to legacy: a session cookie from
// school-a must not reach legacy on school-b. A request without the session cookie costs nothing
// (no allocation, no I/O); an id seen before costs a map look-up; a new id costs one store read,
// after which only its school is remembered (never the session's contents).
import type { SessionCodec } from './codecs.ts'
import { cookieValueAt, cookieValueEnd, cookieValueStart, removeCookie } from './cookies.ts'
import { MAX_SESSION_ID_LENGTH } from './session.ts'
import type { SessionIdSigner } from './signer.ts'
import type { SessionLogger, SessionStore } from './store.ts'
import { SILENT_LOGGER } from './store.ts'

export const DEFAULT_BINDING_CACHE_SIZE = 10_000

export interface SessionBindingsOptions {
  readonly store: SessionStore
  readonly codec: SessionCodec
  readonly signer: SessionIdSigner | undefined
  readonly cookieName: string
  readonly tenantKey: string
  /** How many id → school bindings are remembered; the least recently used go first. */
  readonly cacheSize?: number
  readonly log?: SessionLogger
}

export class SessionBindings {
  readonly #store: SessionStore
  readonly #codec: SessionCodec
  readonly #signer: SessionIdSigner | undefined
  readonly #cookieName: string
  readonly #tenantKey: string
  readonly #cacheSize: number
  readonly #log: SessionLogger
  readonly #cache = new Map<string, string>()
  readonly #inFlight = new Map<string, Promise<string | undefined>>()
  #lookups = 0

  constructor (options: SessionBindingsOptions) {
    const cacheSize = options.cacheSize ?? DEFAULT_BINDING_CACHE_SIZE
    if (!Number.isSafeInteger(cacheSize) || cacheSize < 1) throw new TypeError('SessionBindings cacheSize must be a positive integer')
    this.#store = options.store
    this.#codec = options.codec
    this.#signer = options.signer
    this.#cookieName = options.cookieName
    this.#tenantKey = options.tenantKey
    this.#cacheSize = cacheSize
    this.#log = options.log ?? SILENT_LOGGER
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
   * it is kept until evicted. Only definite bindings are kept: an id with no record, or a record
   * that names no school yet, may be bound later (legacy signs in under the id it was given).
   */
  remember (id: string, tenantId: string): void {
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

  /**
   * Whether the session cookie must be removed before this request goes to legacy: true when a
   * session cookie names a session bound to another school, or when its binding cannot be read
   * (store down, record unreadable): a cookie that cannot be cleared does not pass. Synchronous
   * (no I/O) when there is no session cookie or every binding is known; a Promise otherwise.
   * Cookies that are not valid signed ids (when ids are signed) are left alone: legacy ignores them too.
   */
  mustStrip (cookieHeader: string | undefined, tenantId: string): boolean | Promise<boolean> {
    if (cookieHeader === undefined) return false
    let start = cookieValueStart(cookieHeader, this.#cookieName)
    if (start === -1) return false
    let lookups: Array<Promise<boolean>> | undefined
    while (start !== -1) {
      const id = this.#idFrom(cookieValueAt(cookieHeader, start))
      if (id !== undefined) {
        const owner = this.#cached(id)
        if (owner !== undefined) {
          if (owner !== tenantId) return true
        } else {
          (lookups ??= []).push(this.#lookUp(id).then(
            (found) => found !== undefined && found !== tenantId,
            (err: unknown) => {
              this.#log.warn(`session binding unknown, session cookie removed for legacy: ${err instanceof Error ? err.message : 'error'}`)
              return true
            }))
        }
      }
      start = cookieValueStart(cookieHeader, this.#cookieName, cookieValueEnd(cookieHeader, start) + 1)
    }
    if (lookups === undefined) return false
    return Promise.all(lookups).then((verdicts) => verdicts.includes(true))
  }

  /**
   * The Cookie header to send to legacy: the same string when nothing must go, else the header
   * without the session cookie (undefined when nothing else is left).
   */
  legacyCookieHeader (cookieHeader: string | undefined, tenantId: string): string | undefined | Promise<string | undefined> {
    const verdict = this.mustStrip(cookieHeader, tenantId)
    if (verdict === false || cookieHeader === undefined) return cookieHeader
    if (verdict === true) return removeCookie(cookieHeader, this.#cookieName)
    return verdict.then((strip) => strip ? removeCookie(cookieHeader, this.#cookieName) : cookieHeader)
  }

  #idFrom (raw: string): string | undefined {
    const id = this.#signer === undefined ? raw : this.#signer.unsign(raw)
    if (id === undefined || id.length === 0 || id.length > MAX_SESSION_ID_LENGTH) return undefined
    return id
  }

  #lookUp (id: string): Promise<string | undefined> {
    let pending = this.#inFlight.get(id)
    if (pending === undefined) {
      pending = this.#read(id).finally(() => this.#inFlight.delete(id))
      this.#inFlight.set(id, pending)
    }
    return pending
  }

  async #read (id: string): Promise<string | undefined> {
    this.#lookups++
    const bytes = await this.#store.get(id)
    if (bytes === undefined) return undefined
    const owner = this.#codec.decode(bytes)[this.#tenantKey]
    if (typeof owner !== 'string') return undefined
    this.remember(id, owner)
    return owner
  }
}
