// CSRF tokens exactly as Flask-WTF makes and checks them, so a form the legacy rendered can post
// to a migrated route: the session holds a random `csrf_token`; the page carries it signed by
// itsdangerous' URLSafeTimedSerializer(SECRET_KEY, salt='wtf-csrf-token'), i.e.
// `<base64url(json)>.<base64url(timestamp)>.<base64url(HMAC-SHA1)>`, with the key derived
// 'django-concat' style (SHA1(salt + "signer" + secret)) and a leading '.' when the JSON is
// zlib-compressed. A token is good when its signature matches, it is younger than the time limit,
// and what it signs equals the session's value.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { deflateSync, inflateSync } from 'node:zlib'

export const FLASK_WTF_SALT = 'wtf-csrf-token'
const SIGNER_SUFFIX = 'signer'
const MAX_TOKEN_LENGTH = 1_024
const MAX_INFLATED_BYTES = 4_096
const BASE64URL = /^[A-Za-z0-9_-]*$/

export type CsrfVerdict = 'ok' | 'missing' | 'no-session-token' | 'invalid' | 'expired' | 'mismatch'

export interface CsrfTokensOptions {
  /** The legacy's WTF_CSRF_SECRET_KEY, or its SECRET_KEY. */
  readonly secret: string
  /** WTF_CSRF_TIME_LIMIT in seconds; 0: no limit. */
  readonly timeLimitSeconds: number
  readonly salt?: string
  /** Seconds since the epoch; a clock for tests. */
  readonly now?: () => number
}

export class CsrfTokens {
  readonly #key: Buffer
  readonly #timeLimit: number
  readonly #now: () => number

  constructor (options: CsrfTokensOptions) {
    if (options.secret === '') throw new TypeError('CsrfTokens needs a non-empty secret')
    this.#key = createHash('sha1').update(options.salt ?? FLASK_WTF_SALT).update(SIGNER_SUFFIX).update(options.secret).digest()
    this.#timeLimit = options.timeLimitSeconds
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000))
  }

  /** A new random session value, as Flask-WTF's generate_csrf makes one. */
  static sessionValue (): string {
    return createHash('sha1').update(randomBytes(64)).digest('hex')
  }

  /** The signed token a page carries for this session value (generate_csrf). */
  sign (sessionValue: string, at = this.#now()): string {
    const json = Buffer.from(JSON.stringify(sessionValue), 'utf8')
    const compressed = deflateSync(json)
    const payload = compressed.length < json.length - 1 ? '.' + compressed.toString('base64url') : json.toString('base64url')
    const value = `${payload}.${timestampBytes(at).toString('base64url')}`
    return `${value}.${this.#mac(value).toString('base64url')}`
  }

  /** validate_csrf: the token against the session's value (undefined: the session has none). */
  verify (token: string | undefined, sessionValue: string | undefined): CsrfVerdict {
    if (token === undefined || token === '') return 'missing'
    if (sessionValue === undefined || sessionValue === '') return 'no-session-token'
    if (token.length > MAX_TOKEN_LENGTH) return 'invalid'
    const signatureAt = token.lastIndexOf('.')
    if (signatureAt <= 0) return 'invalid'
    const value = token.slice(0, signatureAt)
    const signature = token.slice(signatureAt + 1)
    if (!canonicalBase64url(signature)) return 'invalid'
    const given = Buffer.from(signature, 'base64url')
    const expected = this.#mac(value)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid'

    const timestampAt = value.lastIndexOf('.')
    if (timestampAt <= 0) return 'invalid'
    const stamp = value.slice(timestampAt + 1)
    if (!canonicalBase64url(stamp)) return 'invalid'
    const issuedAt = Buffer.from(stamp, 'base64url').reduce((total, byte) => total * 256 + byte, 0)
    const age = this.#now() - issuedAt
    if (age < 0 || (this.#timeLimit > 0 && age > this.#timeLimit)) return 'expired'

    const signed = decodePayload(value.slice(0, timestampAt))
    if (typeof signed !== 'string') return 'invalid'
    const a = Buffer.from(signed, 'utf8')
    const b = Buffer.from(sessionValue, 'utf8')
    return a.length === b.length && timingSafeEqual(a, b) ? 'ok' : 'mismatch'
  }

  #mac (value: string): Buffer {
    return createHmac('sha1', this.#key).update(value, 'utf8').digest()
  }
}

function timestampBytes (seconds: number): Buffer {
  const bytes: number[] = []
  for (let rest = Math.floor(seconds); rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256)
  return Buffer.from(bytes)
}

function canonicalBase64url (text: string): boolean {
  return text !== '' && BASE64URL.test(text) && Buffer.from(text, 'base64url').toString('base64url') === text
}

function decodePayload (payload: string): unknown {
  const compressed = payload.startsWith('.')
  const body = compressed ? payload.slice(1) : payload
  if (!canonicalBase64url(body)) return undefined
  try {
    let json = Buffer.from(body, 'base64url')
    if (compressed) json = inflateSync(json, { maxOutputLength: MAX_INFLATED_BYTES })
    return JSON.parse(json.toString('utf8'))
  } catch {
    return undefined
  }
}
