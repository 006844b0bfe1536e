// What a session holds, as JavaScript sees it. The shapes follow the Python types a legacy
// session stores, so that a record read from legacy and written back keeps its types:
// str → string, int → number (bigint beyond 2^53), float → number, bool → boolean, None → null,
// list → array, tuple → frozen array, dict → plain object (Map when a key is not a str),
// set → Set, frozenset → frozen Set, bytes → Uint8Array, datetime/date → PyDatetime/PyDate.

export type SessionValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | PyDatetime
  | PyDate
  | SessionValue[]
  | readonly SessionValue[]
  | SessionDict
  | Map<SessionValue, SessionValue>
  | Set<SessionValue>
  | ReadonlySet<SessionValue>

export interface SessionDict { [key: string]: SessionValue }

/** The whole record: the session dict, keyed by str. */
export type SessionData = SessionDict

/** A Python tuple: arrays are lists, frozen arrays are tuples (both are immutable in Python's sense). */
export function tuple (...items: SessionValue[]): readonly SessionValue[] {
  return Object.freeze(items)
}

/** A Python frozenset, as a frozen Set (the freeze marks the type; keep it unmodified). */
export function frozenSet (items: Iterable<SessionValue>): ReadonlySet<SessionValue> {
  return Object.freeze(new Set(items))
}

export interface PyDatetimeFields {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour?: number
  readonly minute?: number
  readonly second?: number
  readonly microsecond?: number
  /** Offset from UTC of an aware datetime with a fixed-offset `datetime.timezone`; null when naive. */
  readonly utcOffsetMicroseconds?: number | null
  /** The name given to `datetime.timezone(offset, name)`, if any. */
  readonly tzName?: string | null
  readonly fold?: 0 | 1
}

const MICROSECONDS_PER_MS = 1000

/** A Python `datetime.datetime`, kept field by field so microseconds and naivety survive a round trip. */
export class PyDatetime {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
  readonly microsecond: number
  readonly utcOffsetMicroseconds: number | null
  readonly tzName: string | null
  readonly fold: 0 | 1

  constructor (fields: PyDatetimeFields) {
    this.year = fields.year
    this.month = fields.month
    this.day = fields.day
    this.hour = fields.hour ?? 0
    this.minute = fields.minute ?? 0
    this.second = fields.second ?? 0
    this.microsecond = fields.microsecond ?? 0
    this.utcOffsetMicroseconds = fields.utcOffsetMicroseconds ?? null
    this.tzName = fields.tzName ?? null
    this.fold = fields.fold ?? 0
    checkDateFields(this.year, this.month, this.day)
    if (!inRange(this.hour, 0, 23) || !inRange(this.minute, 0, 59) || !inRange(this.second, 0, 59) ||
      !inRange(this.microsecond, 0, 999_999)) {
      throw new RangeError('PyDatetime needs hour 0-23, minute 0-59, second 0-59, microsecond 0-999999')
    }
    Object.freeze(this)
  }

  /** An aware UTC datetime for a JavaScript Date (millisecond precision). */
  static fromDate (date: Date): PyDatetime {
    const ms = date.getTime()
    if (!Number.isFinite(ms)) throw new RangeError('PyDatetime.fromDate needs a valid Date')
    return new PyDatetime({
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      second: date.getUTCSeconds(),
      microsecond: date.getUTCMilliseconds() * MICROSECONDS_PER_MS,
      utcOffsetMicroseconds: 0
    })
  }

  /** The instant, reading a naive datetime as UTC (what legacy apps that store utcnow() mean). */
  toDate (): Date {
    const local = Date.UTC(this.year, this.month - 1, this.day, this.hour, this.minute, this.second,
      Math.floor(this.microsecond / MICROSECONDS_PER_MS))
    return new Date(local - Math.trunc((this.utcOffsetMicroseconds ?? 0) / MICROSECONDS_PER_MS))
  }

  /** ISO 8601 like Python's isoformat(). */
  toJSON (): string {
    const date = `${pad(this.year, 4)}-${pad(this.month, 2)}-${pad(this.day, 2)}`
    const time = `${pad(this.hour, 2)}:${pad(this.minute, 2)}:${pad(this.second, 2)}` +
      (this.microsecond === 0 ? '' : `.${pad(this.microsecond, 6)}`)
    return `${date}T${time}${formatOffset(this.utcOffsetMicroseconds)}`
  }
}

/** A Python `datetime.date`. */
export class PyDate {
  readonly year: number
  readonly month: number
  readonly day: number

  constructor (year: number, month: number, day: number) {
    checkDateFields(year, month, day)
    this.year = year
    this.month = month
    this.day = day
    Object.freeze(this)
  }

  toJSON (): string {
    return `${pad(this.year, 4)}-${pad(this.month, 2)}-${pad(this.day, 2)}`
  }
}

function checkDateFields (year: number, month: number, day: number): void {
  if (!inRange(year, 1, 9999) || !inRange(month, 1, 12) || !inRange(day, 1, 31)) {
    throw new RangeError('Python dates need year 1-9999, month 1-12, day 1-31')
  }
}

function inRange (n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max
}

function pad (n: number, width: number): string {
  return String(n).padStart(width, '0')
}

function formatOffset (microseconds: number | null): string {
  if (microseconds === null) return ''
  const sign = microseconds < 0 ? '-' : '+'
  let rest = Math.abs(microseconds)
  const us = rest % 1_000_000
  rest = (rest - us) / 1_000_000
  const seconds = rest % 60
  const minutes = ((rest - seconds) / 60) % 60
  const hours = Math.floor(rest / 3600)
  return `${sign}${pad(hours, 2)}:${pad(minutes, 2)}` +
    (seconds === 0 && us === 0 ? '' : `:${pad(seconds, 2)}`) + (us === 0 ? '' : `.${pad(us, 6)}`)
}
