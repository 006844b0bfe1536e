// The sessions' settings, parsed from the environment that proxy/config.ts hands over, and the
// components they describe, ready for `app.register(sessionsPlugin, createSessions(config, log))`.
import { SessionBindings, DEFAULT_BINDING_CACHE_SIZE } from './bindings.ts'
import { codecByName, SESSION_CODEC_NAMES } from './codecs.ts'
import type { SessionCodecName } from './codecs.ts'
import { MemorySessionStore } from './memory-store.ts'
import { DEFAULT_COOKIE_NAME, DEFAULT_TENANT_KEY } from './plugin.ts'
import type { SessionsPluginOptions } from './plugin.ts'
import { DEFAULT_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT_MS, RedisSessionStore } from './redis-store.ts'
import { DEFAULT_WRITE_RETRIES } from './session.ts'
import { ItsdangerousSigner } from './signer.ts'
import { watchedSigner, type SignatureWatch } from './signature-watch.ts'
import type { SessionLogger } from './store.ts'
import { readOneOf, readSet, readWholeNumber, type Env } from '../config/env.ts'

export const SESSION_SIGNER_NAMES = ['none', 'itsdangerous'] as const
export type SessionSignerName = typeof SESSION_SIGNER_NAMES[number]

export const SESSION_DEFAULTS = Object.freeze({
  SESSION_COOKIE: DEFAULT_COOKIE_NAME,
  SESSION_KEY_PREFIX: DEFAULT_KEY_PREFIX,
  SESSION_CODEC: 'json' as SessionCodecName,
  SESSION_SIGNER: 'none' as SessionSignerName,
  SESSION_TENANT_KEY: DEFAULT_TENANT_KEY,
  SESSION_REDIS_TIMEOUT_MS: DEFAULT_REDIS_TIMEOUT_MS,
  SESSION_WRITE_RETRIES: DEFAULT_WRITE_RETRIES,
  SESSION_BINDING_CACHE_SIZE: DEFAULT_BINDING_CACHE_SIZE
})

export interface SessionConfig {
  /** Undefined: the embedded in-process store. */
  readonly redisUrl: string | undefined
  readonly cookieName: string
  readonly keyPrefix: string
  readonly codec: SessionCodecName
  readonly signer: SessionSignerName
  /** Flask's SECRET_KEY when ids are signed. Not enumerable, so logging the config does not print it. */
  readonly secret: string | undefined
  readonly tenantKey: string
  /** Undefined: a write keeps the record's remaining TTL; else each write resets it to this. */
  readonly ttlSeconds: number | undefined
  readonly redisTimeoutMs: number
  readonly writeRetries: number
  readonly bindingCacheSize: number
}

/** Shorter secrets can be guessed offline from one signed cookie. */
export const MIN_SECRET_BYTES = 16

// RFC 6265 cookie-name token.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function positiveInt (env: Env, name: string, fallback: number, min: number, example: string, problems: string[]): number {
  return readWholeNumber(env, name, { fallback, min, example }, problems)
}

export function parseSessionConfig (env: Env, problems: string[]): SessionConfig {
  let redisUrl = readSet(env, 'REDIS_URL', problems)
  if (redisUrl !== undefined) {
    let protocol = ''
    try { protocol = new URL(redisUrl).protocol } catch {}
    if (protocol !== 'redis:' && protocol !== 'rediss:') {
      problems.push('REDIS_URL must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379')
      redisUrl = undefined
    }
  }

  const cookieName = readSet(env, 'SESSION_COOKIE', problems) ?? SESSION_DEFAULTS.SESSION_COOKIE
  if (!COOKIE_NAME.test(cookieName)) problems.push('SESSION_COOKIE must be a cookie name (letters, digits, !#$%&\'*+-.^_`|~), e.g. SESSION_COOKIE=session')

  // The one session variable whose empty value means something: keys are the bare ids.
  const keyPrefix = env.SESSION_KEY_PREFIX ?? SESSION_DEFAULTS.SESSION_KEY_PREFIX
  const codec = readOneOf(env, 'SESSION_CODEC', SESSION_CODEC_NAMES, SESSION_DEFAULTS.SESSION_CODEC, problems)
  const signer = readOneOf(env, 'SESSION_SIGNER', SESSION_SIGNER_NAMES, SESSION_DEFAULTS.SESSION_SIGNER, problems)
  const secret = readSecret(env, problems)
  if (signer === 'itsdangerous' && secret === undefined && env.SESSION_SECRET === undefined) {
    problems.push('SESSION_SECRET is required when SESSION_SIGNER=itsdangerous: the legacy\'s SECRET_KEY, e.g. SESSION_SECRET=change-me-to-the-flask-secret')
  }

  const tenantKey = readSet(env, 'SESSION_TENANT_KEY', problems) ?? SESSION_DEFAULTS.SESSION_TENANT_KEY
  const ttlSeconds = env.SESSION_TTL_SECONDS === undefined ? undefined : positiveInt(env, 'SESSION_TTL_SECONDS', 0, 1, '2678400', problems)

  const config: SessionConfig = {
    redisUrl,
    cookieName,
    keyPrefix,
    codec,
    signer,
    secret: undefined,
    tenantKey,
    ttlSeconds: ttlSeconds === 0 ? undefined : ttlSeconds,
    redisTimeoutMs: positiveInt(env, 'SESSION_REDIS_TIMEOUT_MS', SESSION_DEFAULTS.SESSION_REDIS_TIMEOUT_MS, 1, '300', problems),
    writeRetries: positiveInt(env, 'SESSION_WRITE_RETRIES', SESSION_DEFAULTS.SESSION_WRITE_RETRIES, 0, '8', problems),
    bindingCacheSize: positiveInt(env, 'SESSION_BINDING_CACHE_SIZE', SESSION_DEFAULTS.SESSION_BINDING_CACHE_SIZE, 1, '10000', problems)
  }
  Object.defineProperty(config, 'secret', { value: secret, enumerable: false })
  return Object.freeze(config)
}

/**
 * SESSION_SECRET as given (not trimmed: it must equal the legacy's SECRET_KEY byte for byte).
 * A short secret is refused unless SESSION_SECRET_ALLOW_WEAK=true says the legacy really has one.
 */
function readSecret (env: Env, problems: string[]): string | undefined {
  const allowWeak = readOneOf(env, 'SESSION_SECRET_ALLOW_WEAK', ['false', 'true'], 'false', problems) === 'true'
  const secret = env.SESSION_SECRET
  if (secret === undefined) return undefined
  if (secret.trim() === '') {
    problems.push('SESSION_SECRET is set but empty: give the legacy\'s SECRET_KEY, or unset it, e.g. SESSION_SECRET=change-me-to-the-flask-secret')
    return undefined
  }
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES && !allowWeak) {
    problems.push(`SESSION_SECRET must be at least ${MIN_SECRET_BYTES} bytes long (or SESSION_SECRET_ALLOW_WEAK=true for a legacy whose SECRET_KEY is shorter), e.g. SESSION_SECRET=a-random-string-of-32-characters`)
  }
  return secret
}

/** Options for sessionsPlugin, with the store, signer and bindings the config describes. */
export type SessionComponents = SessionsPluginOptions & Required<Pick<SessionsPluginOptions, 'bindings'>>

/** `signatures`, when given, sees every signature check (a SESSION_SECRET that differs from legacy's is loud). */
export function createSessions (config: SessionConfig, log?: SessionLogger, signatures?: SignatureWatch): SessionComponents {
  const store = config.redisUrl === undefined
    ? new MemorySessionStore(config.ttlSeconds === undefined ? {} : { ttlSeconds: config.ttlSeconds })
    : new RedisSessionStore({
      url: config.redisUrl,
      keyPrefix: config.keyPrefix,
      timeoutMs: config.redisTimeoutMs,
      ...(config.ttlSeconds === undefined ? {} : { ttlSeconds: config.ttlSeconds }),
      ...(log === undefined ? {} : { log })
    })
  const codec = codecByName(config.codec)
  const itsdangerous = config.signer === 'itsdangerous' && config.secret !== undefined
    ? new ItsdangerousSigner({ secret: config.secret })
    : undefined
  const signer = itsdangerous !== undefined && signatures !== undefined ? watchedSigner(itsdangerous, signatures) : itsdangerous
  const bindings = new SessionBindings({
    store,
    codec,
    signer,
    cookieName: config.cookieName,
    tenantKey: config.tenantKey,
    cacheSize: config.bindingCacheSize,
    ...(log === undefined ? {} : { log })
  })
  return {
    store,
    codec,
    ...(signer === undefined ? {} : { signer }),
    cookieName: config.cookieName,
    tenantKey: config.tenantKey,
    writeRetries: config.writeRetries,
    bindings
  }
}
