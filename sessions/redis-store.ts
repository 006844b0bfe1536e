// The session store shared with legacy. Built to fail fast rather than queue: while Redis is
// unreachable every call rejects at once with FICUS_ERR_SESSION_STORE_UNAVAILABLE (503), a hung
// Redis is cut off by the command timeout, and the client reconnects in the background so that
// sessions work again as soon as Redis is back, without a restart.
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import { throwIfCancelled } from '../cancellation/request-scope.ts'
import { SessionErrors } from './errors.ts'
import type { CompareAndSetResult, SessionLogger, SessionStore } from './store.ts'
import { GONE, SILENT_LOGGER, WRITTEN } from './store.ts'

export const DEFAULT_KEY_PREFIX = 'session:'
export const DEFAULT_REDIS_TIMEOUT_MS = 300
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000
/** Reconnect attempts back off linearly up to this pause, and never stop. */
export const MAX_RECONNECT_PAUSE_MS = 1_000
const RECONNECT_STEP_MS = 50
const QUIT_TIMEOUT_MS = 1_000

// Compare-and-set in one round trip. The caller sends the SHA-1 of the bytes it read rather than
// the bytes. A positive ARGV[3] resets the lifetime (Flask-Session's own rule: SETEX with
// PERMANENT_SESSION_LIFETIME on every save); otherwise the record keeps the PTTL it has.
const COMPARE_AND_SET_LUA = `
local current = redis.call('GET', KEYS[1])
if not current then return {0} end
if redis.sha1hex(current) ~= ARGV[1] then return {1, current} end
local ttl = tonumber(ARGV[3])
if ttl <= 0 then ttl = redis.call('PTTL', KEYS[1]) end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return {2}
`
// ioredis costs ~8 MB of RSS once loaded: a process without REDIS_URL (the embedded store) never
// loads it. Loaded synchronously on first construction, so building the store stays synchronous.
let RedisClient: typeof Redis | undefined
function redisClient (): typeof Redis {
  RedisClient ??= (createRequire(import.meta.url)('ioredis') as { Redis: typeof Redis }).Redis
  return RedisClient
}

const CAS_GONE = 0
const CAS_CHANGED = 1
const CAS_WRITTEN = 2

interface CompareAndSetCommand {
  ficusSessionCompareAndSetBuffer (key: string, expectedSha1: string, next: Buffer, ttlMs: number): Promise<[number, Buffer?]>
}

export interface RedisSessionStoreOptions {
  /** redis:// or rediss:// URL. */
  readonly url: string
  readonly keyPrefix?: string
  /** Reset each written record to this lifetime; undefined keeps the record's remaining TTL. */
  readonly ttlSeconds?: number
  /** Bound on every command, and so on how long a request waits for a hung Redis. */
  readonly timeoutMs?: number
  readonly connectTimeoutMs?: number
  readonly log?: SessionLogger
}

/** Redis errors can carry the command and its arguments (the key holds the session id): keep the message only. */
function unavailable (err: unknown): Error {
  const message = err instanceof Error ? err.message : 'unknown error'
  return SessionErrors.FICUS_ERR_SESSION_STORE_UNAVAILABLE(undefined, { cause: new Error(message) })
}

export class RedisSessionStore implements SessionStore {
  readonly description: string
  readonly #redis: Redis
  readonly #prefix: string
  readonly #ttlMs: number
  readonly #log: SessionLogger
  readonly #timeoutMs: number
  #down = false
  #connectedOnce = false
  #closing = false

  constructor (options: RedisSessionStoreOptions) {
    const url = new URL(options.url)
    this.description = `redis ${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`
    this.#prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.#ttlMs = options.ttlSeconds === undefined ? 0 : options.ttlSeconds * 1000
    this.#log = options.log ?? SILENT_LOGGER
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS
    this.#redis = new (redisClient())(options.url, {
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.#timeoutMs,
      // Every GET of the requests read in one turn of the event loop leaves in one socket write:
      // one write system call per request was 40% of the session path's CPU (bench/README.md).
      // Each command keeps its own reply, timeout and error; it is still one round trip each.
      enableAutoPipelining: true,
      connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(attempt * RECONNECT_STEP_MS, MAX_RECONNECT_PAUSE_MS)
    })
    this.#redis.defineCommand('ficusSessionCompareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET_LUA })
    this.#redis.on('error', (err: Error) => this.#wentDown(err.message))
    this.#redis.on('close', () => this.#wentDown('connection closed'))
    this.#redis.on('ready', () => {
      this.#connectedOnce = true
      if (!this.#down) return
      this.#down = false
      this.#log.info(`session store ${this.description} available again`)
    })
  }

  /** Logged once per outage; until the client is ready again, requests needing a session get 503. */
  #wentDown (reason: string): void {
    if (this.#down || this.#closing) return
    this.#down = true
    this.#log.warn(`session store ${this.description} unavailable: ${reason}`)
  }

  /** Waits until the first connection is up; rejects with FICUS_ERR_SESSION_STORE_UNAVAILABLE after `timeoutMs`. */
  async ready (timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Promise<void> {
    if (this.#redis.status === 'ready') return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#redis.off('ready', onReady)
        reject(unavailable(new Error(`not connected after ${timeoutMs} ms`)))
      }, timeoutMs)
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      this.#redis.once('ready', onReady)
    })
  }

  /** Requests that arrive while the very first connection is being made wait for it, within the command bound. */
  async #connected (): Promise<void> {
    if (!this.#connectedOnce) await this.ready(this.#timeoutMs)
  }

  async get (id: string): Promise<Buffer | undefined> {
    await this.#connected()
    // A cancelled request's read or write is not sent (each is bounded by the command timeout once sent).
    throwIfCancelled()
    try {
      return (await this.#redis.getBuffer(this.#prefix + id)) ?? undefined
    } catch (err) {
      throw unavailable(err)
    }
  }

  async compareAndSet (id: string, expected: Buffer, next: Buffer): Promise<CompareAndSetResult> {
    await this.#connected()
    throwIfCancelled()
    const expectedSha1 = createHash('sha1').update(expected).digest('hex')
    let reply: [number, Buffer?]
    try {
      reply = await (this.#redis as unknown as CompareAndSetCommand)
        .ficusSessionCompareAndSetBuffer(this.#prefix + id, expectedSha1, next, this.#ttlMs)
    } catch (err) {
      throw unavailable(err)
    }
    const [outcome, current] = reply
    if (outcome === CAS_WRITTEN) return WRITTEN
    if (outcome === CAS_CHANGED && current !== undefined) return { outcome: 'changed', current }
    if (outcome === CAS_GONE) return GONE
    throw unavailable(new Error('unexpected reply to the session compare-and-set script'))
  }

  async close (): Promise<void> {
    this.#closing = true
    if (this.#redis.status === 'ready') {
      const quit = this.#redis.quit().catch(() => undefined)
      const timeout = new Promise((resolve) => setTimeout(resolve, QUIT_TIMEOUT_MS).unref())
      await Promise.race([quit, timeout])
    }
    this.#redis.disconnect()
  }
}
