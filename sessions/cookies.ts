// The session cookie in a Cookie header, read the way ficus can vouch for on every parser legacy
// may use. Servers disagree on Cookie headers: werkzeug strips blanks around names and lets a
// quoted value run over `;`, Zope also splits on `,` and after a closing quote and percent-decodes
// values, others fold the name's case. So ficus reads the session cookie only in one plain
// spelling and counts every spelling any of them could take for it:
// - every piece of the header between `;`, `,` and `"` whose name, without blanks or controls
//   around it, percent-decoded and case-folded, is the cookie name, is a value of the session cookie;
// - the cookie counts only when there is exactly one such value, written `name=value` as a whole
//   `;`-separated pair (spaces before it only), where werkzeug also sees a pair start, and the value
//   is plain: printable ASCII without `"`, `%`, `,`, `;`, `\` or blanks, so no parser reads it
//   differently. Several values, or one in any other spelling, is no session on either side.
// Finding is allocation-free on headers without the session cookie, since it runs on every
// legacy-bound request.

/** The header holds several values of the session cookie (however spelled). */
export const SEVERAL_SESSION_COOKIES: unique symbol = Symbol('several session cookies')
/** The header holds one value of the session cookie, not in its plain spelling. */
export const MALFORMED_SESSION_COOKIE: unique symbol = Symbol('malformed session cookie')

/** The plain value; undefined when the header carries no session cookie at all. */
export type SessionCookieValue = string | undefined | typeof SEVERAL_SESSION_COOKIES | typeof MALFORMED_SESSION_COOKIE

/** A plain value longer than this is no session cookie (a signed id of 256 characters fits). */
export const MAX_SESSION_COOKIE_LENGTH = 320

const SEMICOLON = 0x3b
const EQUALS = 0x3d
const SPACE = 0x20
const DEL = 0x7f

/** Blanks and controls: what werkzeug's strip() and Zope's `[\x00- ]*` skip around a name. */
function isBlankOrControl (code: number): boolean {
  return code <= SPACE || code === DEL
}

/** RFC 6265 cookie-octets without `%` (Zope percent-decodes values): no quote, comma, semicolon, backslash, blank, control or non-ASCII. */
const PLAIN_VALUE = /^[\x21\x23\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/

function lowerAscii (code: number): number {
  return code >= 0x41 && code <= 0x5a ? code + 0x20 : code
}

// werkzeug 2.x `_cookie_re`, with Python's bytes `\s`: where werkzeug sees pairs start when a
// quoted value runs over `;`.
const WERKZEUG_PAIR = /[^=;]*(?:[ \t\n\r\f\v]*=[ \t\n\r\f\v]*(?:"(?:[^\\"]|\\.)*"|.*?))?[ \t\n\r\f\v]*;/y

export class SessionCookie {
  readonly name: string
  readonly #lowerName: string
  /** The name in any letter case, anywhere. */
  readonly #mentioned: RegExp

  constructor (name: string) {
    if (name.length === 0) throw new TypeError('SessionCookie needs a cookie name')
    this.name = name
    this.#lowerName = name.toLowerCase()
    this.#mentioned = new RegExp(name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i')
  }

  /**
   * The session cookie's plain value; undefined when the header has none;
   * SEVERAL_SESSION_COOKIES or MALFORMED_SESSION_COOKIE when it cannot be vouched for.
   */
  read (header: string | undefined): SessionCookieValue {
    if (header === undefined) return undefined
    // Most headers hold no spelling of the name at all: one native search answers them.
    if (!this.#mentioned.test(header) && !header.includes('%')) return undefined
    let found: SessionCookieValue
    let count = 0
    let start = 0
    const length = header.length
    // Next separator of each kind at or after `start` (-1: none left); each search moves forward
    // only, so reading stays linear in the header's length.
    let semicolon = header.indexOf(';')
    let comma = header.indexOf(',')
    let quote = header.indexOf('"')
    let equals = header.indexOf('=')
    while (start <= length) {
      if (semicolon !== -1 && semicolon < start) semicolon = header.indexOf(';', start)
      if (comma !== -1 && comma < start) comma = header.indexOf(',', start)
      if (quote !== -1 && quote < start) quote = header.indexOf('"', start)
      if (equals !== -1 && equals < start) equals = header.indexOf('=', start)
      let end = length
      if (semicolon !== -1 && semicolon < end) end = semicolon
      if (comma !== -1 && comma < end) end = comma
      if (quote !== -1 && quote < end) end = quote
      if (this.#namesSession(header, start, equals !== -1 && equals < end ? equals : end)) {
        if (++count > 1) return SEVERAL_SESSION_COOKIES
        found = this.#plainValue(header, start, end)
      }
      start = end + 1
    }
    return found
  }

  /**
   * The header without any `;`-separated pair that holds a value of the session cookie (however
   * spelled); the same string when there is none, undefined when nothing else is left. The other
   * pairs and their separators are kept byte for byte (only the blank that followed a removed
   * leading pair goes).
   */
  remove (header: string): string | undefined {
    if (this.read(header) === undefined) return header
    const kept: string[] = []
    for (const pair of header.split(';')) {
      if (this.read(pair) === undefined) kept.push(pair)
    }
    const joined = kept.join(';')
    let from = 0
    while (from < joined.length && (joined.charCodeAt(from) === SPACE || joined.charCodeAt(from) === 0x09)) from++
    const result = from === 0 ? joined : joined.slice(from)
    return result.length === 0 ? undefined : result
  }

  /** Whether the name [start, nameEnd) of a piece is the session cookie's in any spelling a parser may accept. */
  #namesSession (header: string, start: number, nameEnd: number): boolean {
    let from = start
    let to = nameEnd
    while (from < to && isBlankOrControl(header.charCodeAt(from))) from++
    while (to > from && isBlankOrControl(header.charCodeAt(to - 1))) to--
    const length = to - from
    const wanted = this.#lowerName.length
    if (length === wanted) return this.#sameName(header, from)
    // `sess%69on`: only a longer name holding a `%` can decode to the cookie name.
    if (length < wanted || length > wanted * 3) return false
    const percent = header.indexOf('%', from)
    if (percent === -1 || percent >= to) return false
    let decoded: string
    try {
      decoded = decodeURIComponent(header.slice(from, to))
    } catch {
      return false
    }
    return decoded.trim().toLowerCase() === this.#lowerName
  }

  #sameName (header: string, at: number): boolean {
    const name = this.#lowerName
    for (let i = 0; i < name.length; i++) {
      if (lowerAscii(header.charCodeAt(at + i)) !== name.charCodeAt(i)) return false
    }
    return true
  }

  /** The value when the piece [start, end) is the plain `name=value` pair, else MALFORMED. */
  #plainValue (header: string, start: number, end: number): string | typeof MALFORMED_SESSION_COOKIE {
    if (start > 0 && header.charCodeAt(start - 1) !== SEMICOLON) return MALFORMED_SESSION_COOKIE
    if (end < header.length && header.charCodeAt(end) !== SEMICOLON) return MALFORMED_SESSION_COOKIE
    let at = start
    while (at < end && header.charCodeAt(at) === SPACE) at++
    if (!header.startsWith(this.name, at) || header.charCodeAt(at + this.name.length) !== EQUALS) return MALFORMED_SESSION_COOKIE
    const valueStart = at + this.name.length + 1
    if (valueStart === end || end - valueStart > MAX_SESSION_COOKIE_LENGTH) return MALFORMED_SESSION_COOKIE
    const value = header.slice(valueStart, end)
    if (!PLAIN_VALUE.test(value) || !werkzeugPairStartsAt(header, start)) return MALFORMED_SESSION_COOKIE
    return value
  }
}

/** Whether werkzeug's cookie parser starts a pair at `position` (just after a `;`, or at 0). */
function werkzeugPairStartsAt (header: string, position: number): boolean {
  // Without a quote before it, werkzeug's pairs are exactly the `;`-separated ones.
  const quote = header.lastIndexOf('"', position)
  if (quote === -1 || position === 0) return true
  const text = header + ';'
  let i = 0
  while (i < position) {
    WERKZEUG_PAIR.lastIndex = i
    if (WERKZEUG_PAIR.exec(text) === null) return false
    i = WERKZEUG_PAIR.lastIndex
  }
  return i === position
}
