// One request's view of the shared session: loaded at most once, in one store round trip, only
// when the handler asks for it; saved by compare-and-set so that a concurrent write to other keys
// is never lost, and changed with update(fn) where a change depends on what the record holds.
import { SessionErrors } from './errors.ts'
import type { SessionCodec } from './codecs.ts'
import { SessionCookie } from './cookies.ts'
import { setOwn } from './pickle.ts'
import type { SessionIdSigner } from './signer.ts'
import type { SessionStore } from './store.ts'
import type { SessionData, SessionValue } from './values.ts'

export const DEFAULT_WRITE_RETRIES = 8
/** Longer cookie values are not session ids; refusing them keeps odd keys out of Redis. */
export const MAX_SESSION_ID_LENGTH = 256

/** What every request's session needs; built once by the plugin. */
export interface SessionRuntime {
  readonly store: SessionStore
  readonly codec: SessionCodec
  /** Undefined: ids are used as the cookie holds them (Flask-Session without SESSION_USE_SIGNER). */
  readonly signer: SessionIdSigner | undefined
  readonly cookieName: string
  /** The session key that names the school the session belongs to. */
  readonly tenantKey: string
  /** Compare-and-set attempts after the first before giving up with FICUS_ERR_SESSION_CONFLICT. */
  readonly writeRetries: number
  /** Told each binding a load sees, so legacy-bound requests need not look it up again. */
  readonly onBinding?: (id: string, tenantId: string) => void
}

/** Constrains a declared session shape to what a session can hold. */
export type SessionShape<T> = { [K in keyof T]?: SessionValue }

const DELETED: unique symbol = Symbol('deleted')
const ENDED: unique symbol = Symbol('ended')
type Change = SessionValue | typeof DELETED

/** Pauses between compare-and-set attempts grow up to this (random within it, so writers spread out). */
export const MAX_RETRY_PAUSE_MS = 50

const cookies = new Map<string, SessionCookie>()
function sessionCookie (name: string): SessionCookie {
  let cookie = cookies.get(name)
  if (cookie === undefined) {
    cookie = new SessionCookie(name)
    cookies.set(name, cookie)
  }
  return cookie
}

/**
 * The session id a plain cookie value names: verified (canonical spelling only) when ids are
 * signed; undefined when it names none.
 */
export function sessionIdFromValue (signer: SessionIdSigner | undefined, value: string): string | undefined {
  const id = signer === undefined ? value : signer.unsign(value)
  if (id === undefined || id.length === 0 || id.length > MAX_SESSION_ID_LENGTH) return undefined
  return id
}

/**
 * The session id out of a Cookie header, by the same rules legacy-bound requests are stripped by
 * (cookies.ts, bindings.ts): undefined when there is none, several, or one ficus cannot vouch for.
 */
export function sessionIdFromCookie (runtime: Pick<SessionRuntime, 'cookieName' | 'signer'>, cookieHeader: string | undefined): string | undefined {
  const value = sessionCookie(runtime.cookieName).read(cookieHeader)
  return typeof value === 'string' ? sessionIdFromValue(runtime.signer, value) : undefined
}

/**
 * The session as one attempt of `update(fn)` sees it: the record as the store holds it now, with
 * the handler's pending changes on top. What `fn` sets or deletes is written in the same
 * compare-and-set; when another writer got there first, `fn` runs again on the fresh record.
 */
export class SessionDraft<T extends SessionShape<T> = SessionData> {
  readonly #data: SessionData
  readonly #tenantKey: string
  readonly tenantId: string

  constructor (data: SessionData, tenantKey: string, tenantId: string) {
    this.#data = data
    this.#tenantKey = tenantKey
    this.tenantId = tenantId
  }

  get<K extends keyof T & string> (key: K): T[K] | undefined {
    return (Object.hasOwn(this.#data, key) ? this.#data[key] : undefined) as T[K] | undefined
  }

  getString (key: keyof T & string): string | undefined {
    const value: unknown = this.get(key)
    return typeof value === 'string' ? value : undefined
  }

  has (key: string): boolean {
    return this.get(key as keyof T & string) !== undefined
  }

  keys (): string[] {
    return Object.keys(this.#data)
  }

  set<K extends keyof T & string> (key: K, value: Exclude<T[K], undefined>): void {
    if (key === this.#tenantKey) throw SessionErrors.FICUS_ERR_SESSION_TENANT_KEY_READONLY(key)
    setOwn(this.#data, key, value as SessionValue)
  }

  delete (key: keyof T & string): void {
    if (key === this.#tenantKey) throw SessionErrors.FICUS_ERR_SESSION_TENANT_KEY_READONLY(key)
    delete this.#data[key]
  }
}

// Writes to one session from this process take turns, so that they do not make each other retry:
// only writers elsewhere (legacy, other ficus processes) can make a compare-and-set miss.
const turns = new WeakMap<SessionStore, Map<string, Promise<void>>>()
function inTurn<R> (store: SessionStore, id: string, work: () => Promise<R>): Promise<R> {
  let byId = turns.get(store)
  if (byId === undefined) {
    byId = new Map()
    turns.set(store, byId)
  }
  const queue = byId
  const run = (queue.get(id) ?? Promise.resolve()).then(work)
  const done = run.then(() => undefined, () => undefined)
  queue.set(id, done)
  void done.then(() => { if (queue.get(id) === done) queue.delete(id) })
  return run
}

function pause (attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(MAX_RETRY_PAUSE_MS, 2 ** attempt)
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A loaded session that belongs to the request's school. Values are returned as stored: to change
 * a nested value, build the new value and `set` it. Changes are written after the handler (or by
 * `save()`), re-applied key by key on top of whatever legacy wrote in the meantime.
 */
export class Session<T extends SessionShape<T> = SessionData> {
  readonly #runtime: SessionRuntime
  readonly #id: string
  readonly #tenantId: string
  #bytes: Buffer
  #base: SessionData
  readonly #changes = new Map<string, Change>()
  #ended = false
  #saving: Promise<void> | undefined
  #writeAttempts = 0

  constructor (runtime: SessionRuntime, id: string, tenantId: string, bytes: Buffer, data: SessionData) {
    this.#runtime = runtime
    this.#id = id
    this.#tenantId = tenantId
    this.#bytes = bytes
    this.#base = data
  }

  /** The school this session belongs to (always the request's). */
  get tenantId (): string {
    return this.#tenantId
  }

  get<K extends keyof T & string> (key: K): T[K] | undefined {
    if (this.#changes.has(key)) {
      const change = this.#changes.get(key)
      return (change === DELETED ? undefined : change) as T[K] | undefined
    }
    return (Object.hasOwn(this.#base, key) ? this.#base[key] : undefined) as T[K] | undefined
  }

  /** The value when it is a string, else undefined: a checked read for values legacy wrote. */
  getString (key: keyof T & string): string | undefined {
    const value: unknown = this.get(key)
    return typeof value === 'string' ? value : undefined
  }

  has (key: string): boolean {
    return this.get(key as keyof T & string) !== undefined
  }

  keys (): string[] {
    const keys = Object.keys(this.#base).filter((key) => !this.#changes.has(key))
    for (const [key, change] of this.#changes) if (change !== DELETED) keys.push(key)
    return keys
  }

  /** A shallow copy of the session as the handler now sees it. */
  toObject (): T {
    const out: SessionData = {}
    for (const key of this.keys()) setOwn(out, key, this.get(key as keyof T & string) as SessionValue)
    return out as T
  }

  set<K extends keyof T & string> (key: K, value: Exclude<T[K], undefined>): void {
    this.#guard(key)
    this.#changes.set(key, value as SessionValue)
  }

  delete (key: keyof T & string): void {
    this.#guard(key)
    this.#changes.set(key, DELETED)
  }

  /** Unsaved changes are pending. */
  get modified (): boolean {
    return this.#changes.size > 0
  }

  /** Compare-and-set attempts the last save needed (1 when nothing else wrote in between). */
  get writeAttempts (): number {
    return this.#writeAttempts
  }

  /** The record vanished while saving (legacy logged the user out): the changes were dropped. */
  get ended (): boolean {
    return this.#ended
  }

  #guard (key: string): void {
    if (key === this.#runtime.tenantKey) throw SessionErrors.FICUS_ERR_SESSION_TENANT_KEY_READONLY(key)
  }

  /** Writes pending changes now. Rejects with FICUS_ERR_SESSION_STORE_UNAVAILABLE or _CONFLICT (503). */
  async save (): Promise<void> {
    while (this.#saving !== undefined) await this.#saving
    if (this.#changes.size === 0 || this.#ended) return
    const saving = inTurn(this.#runtime.store, this.#id, () => this.#write(undefined))
    this.#saving = saving.then(() => undefined, () => undefined).finally(() => { this.#saving = undefined })
    await saving
  }

  /**
   * Changes the session from what it holds now, and writes it before resolving: `change` gets a
   * draft of the current record (with this handler's pending changes on top), sets or deletes
   * keys on it, and may return a value, which `update` resolves to once the write has stuck. When
   * another writer changed the record meanwhile, `change` runs again on the fresh record, so a
   * value computed from the record is never written from a stale copy. `change` must be
   * synchronous and free of side effects (it may run several times). Rejects with
   * FICUS_ERR_SESSION_ENDED when the record is gone (signed out) or now names another school,
   * with _CONFLICT or _STORE_UNAVAILABLE (503) when the write could not be made.
   */
  async update<R> (change: (draft: SessionDraft<T>) => R): Promise<R> {
    while (this.#saving !== undefined) await this.#saving
    if (this.#ended) throw SessionErrors.FICUS_ERR_SESSION_ENDED()
    const writing = inTurn(this.#runtime.store, this.#id, () => this.#write(change))
    this.#saving = writing.then(() => undefined, () => undefined).finally(() => { this.#saving = undefined })
    const outcome = await writing
    if (outcome === ENDED) throw SessionErrors.FICUS_ERR_SESSION_ENDED()
    return outcome.result
  }

  /**
   * Compare-and-set until it sticks, re-running `change` (when given) on the record each attempt
   * found. The race that remains is on the legacy side: Flask-Session reads the whole record when
   * a request starts and writes the whole record back when it ends, so a legacy request that was
   * already running when ficus wrote can still overwrite ficus's keys with what it read earlier.
   * Only legacy itself (a per-key or compare-and-set write) can close that.
   */
  async #write<R> (change: ((draft: SessionDraft<T>) => R) | undefined): Promise<{ result: R } | typeof ENDED> {
    const { store, codec, tenantKey, writeRetries } = this.#runtime
    const pending = new Map(this.#changes)
    let expected = this.#bytes
    let base = this.#base
    for (let attempt = 0; attempt <= writeRetries; attempt++) {
      if (attempt > 0) await pause(attempt)
      this.#writeAttempts = attempt + 1
      const next = applyChanges(base, pending)
      let result = undefined as R
      if (change !== undefined) {
        result = change(new SessionDraft<T>(next, tenantKey, this.#tenantId))
        if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
          throw new TypeError('session.update(change) needs a synchronous change function')
        }
      }
      const bytes = codec.encode(next)
      const outcome = await store.compareAndSet(this.#id, expected, bytes)
      if (outcome.outcome === 'written') {
        this.#bytes = bytes
        this.#base = next
        for (const [key, value] of pending) {
          if (this.#changes.get(key) === value) this.#changes.delete(key)
        }
        return { result }
      }
      if (outcome.outcome === 'gone') {
        this.#end()
        return ENDED
      }
      expected = outcome.current
      base = codec.decode(expected)
      // A record that now names another school is not this session any more.
      if (base[tenantKey] !== this.#tenantId) {
        this.#end()
        return ENDED
      }
    }
    throw SessionErrors.FICUS_ERR_SESSION_CONFLICT(`${writeRetries + 1} attempts`)
  }

  #end (): void {
    this.#ended = true
    this.#changes.clear()
  }
}

function applyChanges (base: SessionData, changes: ReadonlyMap<string, Change>): SessionData {
  const next: SessionData = {}
  for (const key of Object.keys(base)) {
    if (!changes.has(key)) setOwn(next, key, base[key] as SessionValue)
  }
  for (const [key, change] of changes) {
    if (change !== DELETED) setOwn(next, key, change)
  }
  return next
}

/**
 * `request.session`: nothing happens until `load()`. A cookie that is absent, repeated, spelled in
 * a way ficus does not read, unsigned or not canonically signed (when ids are signed), an id with
 * no record, and a record that names another school (or none) all load as null: the handler sees
 * no session, legacy gets no cookie for it, and ficus never makes one from the client's id.
 */
export class RequestSession {
  readonly #runtime: SessionRuntime
  readonly #cookieHeader: string | undefined
  readonly #tenantId: string | undefined
  #loading: Promise<Session | null> | undefined

  constructor (runtime: SessionRuntime, cookieHeader: string | undefined, tenantId: string | undefined) {
    this.#runtime = runtime
    this.#cookieHeader = cookieHeader
    this.#tenantId = tenantId
  }

  /**
   * The session, read once per request however often this is called. Rejects with
   * FICUS_ERR_SESSION_STORE_UNAVAILABLE (503) when the store cannot answer, and with
   * FICUS_ERR_SESSION_UNREADABLE (500) when the record is not in the configured format.
   */
  load<T extends SessionShape<T> = SessionData> (): Promise<Session<T> | null> {
    this.#loading ??= this.#read()
    return this.#loading as unknown as Promise<Session<T> | null>
  }

  /** True once load() was called. */
  get requested (): boolean {
    return this.#loading !== undefined
  }

  /**
   * `load()` then `session.update(change)` (see Session#update): null when there is no session
   * for this school, else the session and what `change` returned, once the write has stuck.
   */
  async update<R, T extends SessionShape<T> = SessionData> (change: (draft: SessionDraft<T>) => R): Promise<{ readonly session: Session<T>, readonly result: R } | null> {
    const session = await this.load<T>()
    if (session === null) return null
    return { session, result: await session.update(change) }
  }

  /**
   * Saves what the handler changed; a no-op when the session was never loaded or not changed.
   * Rejects with FICUS_ERR_SESSION_ENDED when the record went away meanwhile, so that a response
   * never says 2xx for a change that was not written.
   */
  async flush (): Promise<void> {
    if (this.#loading === undefined) return
    const session = await this.#loading.catch(() => null)
    if (session === null || !session.modified) return
    await session.save()
    if (session.ended) throw SessionErrors.FICUS_ERR_SESSION_ENDED()
  }

  async #read (): Promise<Session | null> {
    const runtime = this.#runtime
    if (this.#tenantId === undefined) return null
    const id = sessionIdFromCookie(runtime, this.#cookieHeader)
    if (id === undefined) return null
    const bytes = await runtime.store.get(id)
    if (bytes === undefined) return null
    const data = runtime.codec.decode(bytes)
    const owner = data[runtime.tenantKey]
    if (typeof owner !== 'string') return null
    runtime.onBinding?.(id, owner)
    if (owner !== this.#tenantId) return null
    return new Session(runtime, id, owner, bytes, data)
  }
}
