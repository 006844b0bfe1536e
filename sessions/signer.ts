// Signed session ids, byte for byte as Flask-Session's SESSION_USE_SIGNER makes them: an
// itsdangerous Signer(secret, salt='flask-session', key_derivation='hmac') with its default
// SHA-1 HMAC, giving `<id>.<base64url signature without padding>`.
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface SessionIdSigner {
  readonly name: string
  /** The cookie value for a session id. */
  sign (id: string): string
  /** The session id, or undefined when the value is unsigned or its signature does not match. */
  unsign (value: string): string | undefined
}

export const FLASK_SESSION_SALT = 'flask-session'
const DIGEST = 'sha1'
const SEPARATOR = '.'
const BASE64URL = /^[A-Za-z0-9_-]+$/

export interface ItsdangerousSignerOptions {
  /** Flask's SECRET_KEY. */
  readonly secret: string | Buffer
  readonly salt?: string
}

export class ItsdangerousSigner implements SessionIdSigner {
  readonly name = 'itsdangerous'
  readonly #key: Buffer
  readonly #signatureLength: number

  constructor (options: ItsdangerousSignerOptions) {
    const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret
    if (secret.length === 0) throw new TypeError('ItsdangerousSigner needs a non-empty secret')
    // key_derivation='hmac': the signing key is HMAC(secret, salt).
    this.#key = createHmac(DIGEST, secret).update(options.salt ?? FLASK_SESSION_SALT, 'utf8').digest()
    this.#signatureLength = this.#mac('').length
  }

  #mac (value: string): Buffer {
    return createHmac(DIGEST, this.#key).update(value, 'utf8').digest()
  }

  sign (id: string): string {
    return id + SEPARATOR + this.#mac(id).toString('base64url')
  }

  unsign (value: string): string | undefined {
    const at = value.lastIndexOf(SEPARATOR)
    if (at <= 0) return undefined
    const signature = value.slice(at + 1)
    if (!BASE64URL.test(signature)) return undefined
    const given = Buffer.from(signature, 'base64url')
    // The decoded bytes are compared, as itsdangerous does; but itsdangerous also decodes other
    // spellings to the same bytes (unused padding bits of the last character, `+` and `/`, `=`
    // padding, characters it drops). Only the canonical spelling is accepted, so one id has exactly
    // one cookie value, and every other spelling is stripped for legacy (sessions/bindings.ts).
    if (given.length !== this.#signatureLength || given.toString('base64url') !== signature) return undefined
    const id = value.slice(0, at)
    return timingSafeEqual(given, this.#mac(id)) ? id : undefined
  }
}
