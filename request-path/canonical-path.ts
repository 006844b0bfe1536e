// One spelling per route. The decision (new handler or legacy) is taken on the canonical form of
// the path, and that same form is what legacy receives, so no spelling that legacy would read as
// the same route can slip past a flag. See "Route matching" in the README.
//
// Canonical form:
//   - percent-escapes of unreserved characters are decoded (`%61` -> `a`), other escapes keep
//     their bytes with upper-case hex (`%c3%a9` -> `%C3%A9`);
//   - characters that URL parsers re-encode (`" < > ^ ` { }` and bytes above 0x7e) are
//     percent-encoded, so that no layer between the decision and the socket rewrites the path;
//   - runs of slashes collapse to one (`//a///b` -> `/a/b`);
//   - a trailing slash is kept (routes match with or without it) and letter case is kept (routes
//     match case-insensitively), because legacy ids and file names can be case- and slash-sensitive.
// Rejected (400): anything that could name another path after one more decoding or a server's
// own normalisation: encoded `/` or `\`, a raw `\`, dot-segments (raw or encoded), `;` path
// parameters, control characters and malformed escapes. A character refused raw is refused in
// every escaped spelling too (`%3B`, `%20`, `%0a`...): legacy servers decode the path before
// routing on it. So is a double-encoded escape (`%25` then two hex digits, however spelled), which
// a server that decodes twice reads as another character; what remains decodes to the same path
// once or twice, so the decision holds for either. The query string is never touched.

export type CanonicalPath =
  | { readonly ok: true, readonly url: string }
  | { readonly ok: false, readonly reason: string }

const SLASH = 0x2f
const DOT = 0x2e
const PERCENT = 0x25
const SEMICOLON = 0x3b
const BACKSLASH = 0x5c
const QUESTION = 0x3f
const HASH = 0x23

/** Splits `url` into path and the rest (`?query`), keeping the rest byte for byte. */
export function canonicalizeUrl (url: string): CanonicalPath {
  if (url.charCodeAt(0) !== SLASH) return reject('the request target must be an absolute path')
  const queryAt = url.indexOf('?')
  const pathEnd = queryAt === -1 ? url.length : queryAt
  if (isPlainPath(url, pathEnd)) return { ok: true, url }
  const path = canonicalizePath(url.slice(0, pathEnd))
  if (typeof path !== 'string') return path
  return { ok: true, url: queryAt === -1 ? path : path + url.slice(queryAt) }
}

// The fast path: most requests carry a path that is already canonical, and need no allocation.
function isPlainPath (url: string, end: number): boolean {
  let previous = SLASH
  for (let i = 1; i < end; i++) {
    const c = url.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === PERCENT || c === SEMICOLON || c === BACKSLASH || c === HASH || REENCODED[c] === 1) return false
    if (previous === SLASH && (c === SLASH || c === DOT)) return false
    // `..` anywhere in a segment: the slow path decides whether it begins or ends one.
    if (previous === DOT && c === DOT) return false
    previous = c
  }
  return true
}

function canonicalizePath (path: string): string | CanonicalPath {
  const segments: string[] = []
  const raw = path.split('/')
  const trailingSlash = raw.length > 1 && raw[raw.length - 1] === ''
  for (const part of raw) {
    if (part === '') continue
    const segment = canonicalizeSegment(part)
    if (typeof segment !== 'string') return segment
    if (segment === '.' || segment === '..') return reject('dot-segments are not allowed in the path')
    // `/..a` and `a../` are no dot-segments, but traversal checks downstream (reply-from's among
    // them) read `/..` and `../` as one: refused here, so that the edge answers, not a guess.
    if (segment.startsWith('..') || segment.endsWith('..')) return reject('path segments that begin or end with ".." are not allowed')
    segments.push(segment)
  }
  if (segments.length === 0) return '/'
  return '/' + segments.join('/') + (trailingSlash ? '/' : '')
}

function canonicalizeSegment (part: string): string | CanonicalPath {
  let out = ''
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return reject('control characters and spaces must be percent-encoded')
    if (c === SEMICOLON) return reject('path parameters (;) are not allowed')
    if (c === BACKSLASH) return reject('backslashes are not allowed in the path')
    if (c === HASH || c === QUESTION) return reject('malformed request target')
    if (c > 0xff) return reject('malformed request target')
    if (c >= 0x80 || REENCODED[c] === 1) { out += '%' + HEX[c >> 4] + HEX[c & 15]; continue }
    if (c !== PERCENT) { out += part[i]; continue }
    const high = hexValue(part.charCodeAt(i + 1))
    const low = hexValue(part.charCodeAt(i + 2))
    if (high < 0 || low < 0) return reject('malformed percent-encoding in the path')
    const byte = high * 16 + low
    if (byte === SLASH || byte === BACKSLASH) return reject('encoded slashes are not allowed in the path')
    if (byte < 0x20 || byte === 0x7f) return reject('encoded control characters are not allowed in the path')
    if (REFUSED_ESCAPED[byte] === 1) return reject('encoded spaces, semicolons, # and ? are refused like their raw forms')
    out += isUnreserved(byte) ? String.fromCharCode(byte) : '%' + HEX[high] + HEX[low]
    i += 2
  }
  // Checked on the output, where escaped hex digits (`%25%34%31`) are already decoded.
  if (out.includes('%25') && DOUBLE_ENCODED.test(out)) return reject('double-encoded escapes (%25 followed by two hex digits) are not allowed in the path')
  return out
}

// Printable characters refused raw in a segment, hence refused when percent-encoded.
const REFUSED_ESCAPED = new Uint8Array(128)
for (const c of ' ;#?') REFUSED_ESCAPED[c.charCodeAt(0)] = 1
const DOUBLE_ENCODED = /%25[0-9A-Fa-f]{2}/

const HEX = '0123456789ABCDEF'

// What WHATWG URL (and so the forwarding layer) would percent-encode in a path; Node hands us
// bytes above 0x7e as latin1 characters, one per byte.
const REENCODED = new Uint8Array(128)
for (const c of '"<>^`{}') REENCODED[c.charCodeAt(0)] = 1

function hexValue (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

// RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~"
function isUnreserved (c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === DOT || c === 0x5f || c === 0x7e
}

function reject (reason: string): CanonicalPath {
  return { ok: false, reason }
}
