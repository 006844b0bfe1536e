// How a session record is laid out in the store: the legacy's own format, so that legacy and
// ficus read each other's writes. `flask-session` is what Flask-Session's RedisSessionInterface
// stores (pickle.dumps of the session dict); `json` is a UTF-8 JSON object.
import { SessionErrors } from './errors.ts'
import { PickleError, pickle, unpickle } from './pickle.ts'
import type { SessionData, SessionValue } from './values.ts'

export interface SessionCodec {
  readonly name: SessionCodecName
  /** Throws FICUS_ERR_SESSION_UNREADABLE when the bytes are not a session in this format. */
  decode (bytes: Buffer): SessionData
  /** Throws FICUS_ERR_SESSION_VALUE_UNSUPPORTED when a value has no form in this format. */
  encode (data: SessionData): Buffer
}

export const SESSION_CODEC_NAMES = ['json', 'flask-session'] as const
export type SessionCodecName = typeof SESSION_CODEC_NAMES[number]

function isPlainObject (value: unknown): value is SessionData {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

export const flaskSessionCodec: SessionCodec = Object.freeze({
  name: 'flask-session' as const,
  decode (bytes: Buffer): SessionData {
    let value: SessionValue
    try {
      value = unpickle(bytes)
    } catch (err) {
      throw SessionErrors.FICUS_ERR_SESSION_UNREADABLE(err instanceof PickleError ? err.message : undefined, { cause: err })
    }
    if (!isPlainObject(value)) throw SessionErrors.FICUS_ERR_SESSION_UNREADABLE('the pickle is not a dict with str keys')
    return value
  },
  encode (data: SessionData): Buffer {
    try {
      return pickle(data)
    } catch (err) {
      throw SessionErrors.FICUS_ERR_SESSION_VALUE_UNSUPPORTED(err instanceof Error ? err.message : undefined, { cause: err })
    }
  }
})

/** Nesting deeper than this is refused, as the pickle codec does. */
const MAX_JSON_DEPTH = 200

function checkJson (value: unknown, path: string, depth: number): void {
  if (depth > MAX_JSON_DEPTH) throw SessionErrors.FICUS_ERR_SESSION_VALUE_UNSUPPORTED(`${path} is nested too deeply`)
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return
    throw SessionErrors.FICUS_ERR_SESSION_VALUE_UNSUPPORTED(`${path} is not a finite number`)
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${path}[${i}]`, depth + 1))
    return
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) checkJson(value[key], `${path}.${key}`, depth + 1)
    return
  }
  const kind = typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value
  throw SessionErrors.FICUS_ERR_SESSION_VALUE_UNSUPPORTED(`${path} is a ${kind}, which JSON cannot hold`)
}

export const jsonCodec: SessionCodec = Object.freeze({
  name: 'json' as const,
  decode (bytes: Buffer): SessionData {
    let value: unknown
    try {
      // JSON.parse defines keys as own data properties, so a `__proto__` key stays a plain key.
      value = JSON.parse(bytes.toString('utf8'))
    } catch {
      // JSON.parse's message quotes the record; the session's contents stay out of logs.
      throw SessionErrors.FICUS_ERR_SESSION_UNREADABLE('the record is not JSON')
    }
    if (!isPlainObject(value)) throw SessionErrors.FICUS_ERR_SESSION_UNREADABLE('the JSON record is not an object')
    return value
  },
  encode (data: SessionData): Buffer {
    checkJson(data, 'session', 0)
    return Buffer.from(JSON.stringify(data), 'utf8')
  }
})

export function codecByName (name: SessionCodecName): SessionCodec {
  return name === 'json' ? jsonCodec : flaskSessionCodec
}
