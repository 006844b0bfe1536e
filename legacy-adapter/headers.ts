// Header rules for the hop between ficus and legacy. Everything end-to-end passes untouched,
// except what would make legacy read the request as another one: hop-by-hop headers stop here
// (RFC 9110 section 7.6.1), so do names legacy's gateway folds into another header's, URL and
// method overrides, and the headers that speak for the client, which are ficus's own and
// believed only from a trusted proxy.
import type { IncomingHttpHeaders } from 'node:http'
import { util } from 'undici'

// Never forwarded either way. `expect` too: Node has already answered 100-continue to the client.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']
const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP)
const REQUEST_HOP_BY_HOP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'expect'])
const CONNECTION_ONLY: ReadonlySet<string> = new Set(['keep-alive', 'close'])

const headerNameToString = util.headerNameToString

// Legacy's gateway would read these as another request: some servers route on the URL they
// name instead of the one the decision was taken on, or run the method they name.
const OVERRIDES: ReadonlySet<string> = new Set(['x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override'])

// Headers that say who the client is or how it connected. ficus sets the first six itself; all of
// them are believed only from a trusted proxy.
const FORWARDING = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip']
const SPEAKS_FOR_CLIENT: ReadonlySet<string> = new Set([...FORWARDING, 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip'])

export interface RequestHeaderPolicy {
  /** The peer is a trusted proxy, whose headers speaking for the client are believed. */
  readonly trusted: boolean
  /** Lower-case names dropped by default that legacy still receives (LEGACY_ALLOW_HEADERS). */
  readonly allowed: ReadonlySet<string>
}

/**
 * Removes, in one pass over the names: every hop-by-hop header and every header `Connection`
 * lists; names with anything but letters, digits and `-` (WSGI servers fold `_` into `-`, CGI
 * gateways every other character, so `X_Forwarded_For` reads as X-Forwarded-For) and the URL and
 * method overrides, unless allowed; and, from an untrusted peer, the headers that speak for the client.
 */
export function removeRequestHeaders (headers: IncomingHttpHeaders, policy: RequestHeaderPolicy): void {
  const listed = listedIn(headers.connection)
  for (const name in headers) {
    if (REQUEST_HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) delete headers[name]
    else if (!isPlainName(name)) { if (!policy.allowed.has(name)) delete headers[name] }
    // Every override and every header speaking for the client starts with x, f or t; most
    // browser headers do not, and skip the lookups.
    else if (MAY_BE_SPECIAL[name.charCodeAt(0)] !== 1) continue
    else if (OVERRIDES.has(name)) { if (!policy.allowed.has(name)) delete headers[name] }
    else if (!policy.trusted && (SPEAKS_FOR_CLIENT.has(name) || name.startsWith('x-forwarded-'))) delete headers[name]
  }
}

const MAY_BE_SPECIAL = new Uint8Array(128)
for (const c of 'xft') MAY_BE_SPECIAL[c.charCodeAt(0)] = 1

// Letters, digits and `-`; Node hands header names over lower-cased.
const PLAIN = new Uint8Array(128)
for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789-') PLAIN[c.charCodeAt(0)] = 1

function isPlainName (name: string): boolean {
  for (let i = 0; i < name.length; i++) if (PLAIN[name.charCodeAt(i)] !== 1) return false
  return true
}

// What an allow-listed name must never become once a gateway folds it: a header ficus sets, or
// one that frames or authenticates the request.
const NEVER_ALLOWED: ReadonlySet<string> = new Set([...SPEAKS_FOR_CLIENT, ...HOP_BY_HOP, 'host', 'content-length', 'content-type', 'cookie', 'authorization', 'expect'])

/** Why `name` cannot be in LEGACY_ALLOW_HEADERS, or undefined when it can. */
export function allowedHeaderProblem (name: string, requestIdHeader: string): string | undefined {
  const lower = name.toLowerCase()
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower)) return `${name} is not a header name`
  if (!OVERRIDES.has(lower) && isPlainName(lower)) return `${name} is never dropped, so it needs no allowing`
  const folded = lower.replace(/[^a-z0-9]/g, '-')
  if (NEVER_ALLOWED.has(folded) || folded === requestIdHeader || folded.startsWith('x-forwarded-')) {
    return `${name} would reach legacy as ${folded}, which only ficus may set`
  }
  return undefined
}

/**
 * The end-to-end headers of an upstream response, from the raw [name, value, ...] list undici's
 * dispatch API hands over: hop-by-hop headers and those `Connection` lists dropped, as a flat list
 * of lower-case names and values decoded as latin1 (as undici's own parser decodes them, so every
 * byte goes back out as it came), without `omit` (a header ficus sets itself), with the session
 * cookie made host-only when `sessionCookie` names it.
 */
export function endToEndRawResponseHeaders (raw: readonly Buffer[], omit: string | undefined, sessionCookie: string | undefined): string[] {
  const kept: string[] = []
  let connection: string[] | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = headerNameToString(raw[i] as Buffer)
    if (RESPONSE_HOP_BY_HOP.has(name)) {
      if (name === 'connection') {
        const value = (raw[i + 1] as Buffer).toString('latin1')
        // The usual `keep-alive` or `close` names no other header: no list to build.
        if (!CONNECTION_ONLY.has(value.toLowerCase())) (connection ??= []).push(value)
      }
      continue
    }
    if (name === omit) continue
    const value = (raw[i + 1] as Buffer).toString('latin1')
    kept.push(name, sessionCookie !== undefined && name === 'set-cookie' ? hostOnlyLine(value, sessionCookie) : value)
  }
  const listed = listedIn(connection)
  if (listed === undefined) return kept
  const left: string[] = []
  for (let i = 0; i < kept.length; i += 2) if (!listed.has(kept[i] as string)) left.push(kept[i] as string, kept[i + 1] as string)
  return left
}

export type Headers = Record<string, string | string[] | undefined>

/** How legacy's response headers are rewritten on their way to the client (plain answers and upgrades alike). */
export interface ResponseHeaderRules {
  /** Response header naming the side that served, or undefined to leave it out. */
  readonly servedByHeader: string | undefined
  /** Legacy's session cookie, made host-only on the way back; undefined leaves cookies alone. */
  readonly hostOnlyCookie: string | undefined
}

/**
 * The same rules over a parsed header object (an upgrade answer's head, which ficus reads itself):
 * the end-to-end headers, the session cookie host-only, X-Served-By.
 */
export function legacyResponseHeaders (headers: Headers, rules: ResponseHeaderRules): Headers {
  const listed = listedIn(headers.connection)
  const cookie = rules.hostOnlyCookie
  const kept: Headers = {}
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) continue
    const value = headers[name]
    if (cookie === undefined || name !== 'set-cookie' || value === undefined) kept[name] = value
    else kept[name] = typeof value === 'string' ? hostOnlyLine(value, cookie) : value.map((line) => hostOnlyLine(line, cookie))
  }
  if (rules.servedByHeader !== undefined) kept[rules.servedByHeader] = 'legacy'
  return kept
}

// A `Connection: close, x-foo` header makes x-foo hop-by-hop as well. Header names arrive lower-cased.
function listedIn (connection: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (connection === undefined) return undefined
  let listed: Set<string> | undefined
  for (const value of typeof connection === 'string' ? [connection] : connection) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '' && !RESPONSE_HOP_BY_HOP.has(name)) (listed ??= new Set()).add(name)
    }
  }
  return listed
}

export interface ForwardingInfo {
  readonly clientAddress: string
  readonly protocol: 'http' | 'https'
  readonly host: string | undefined
  /** The port the client connected to. */
  readonly port: number | undefined
  readonly requestId: string
  readonly trusted: boolean
}

/**
 * Sets X-Forwarded-For/-Proto/-Host/-Port, Forwarded (RFC 7239), X-Real-IP and the request id,
 * after removeRequestHeaders. A trusted proxy's values are kept (its chains extended); anything
 * else the client sent in their name is gone by now.
 */
export function setForwardingHeaders (headers: IncomingHttpHeaders, info: ForwardingInfo, requestIdHeader: string): void {
  const priorFor = info.trusted ? joinValues(headers['x-forwarded-for']) : undefined
  headers['x-forwarded-for'] = priorFor === undefined ? info.clientAddress : `${priorFor}, ${info.clientAddress}`
  const priorProto = info.trusted ? firstValue(headers['x-forwarded-proto']) : undefined
  headers['x-forwarded-proto'] = priorProto ?? info.protocol
  const priorHost = info.trusted ? firstValue(headers['x-forwarded-host']) : undefined
  const host = priorHost ?? info.host
  if (host === undefined) delete headers['x-forwarded-host']
  else headers['x-forwarded-host'] = host
  const priorPort = info.trusted ? firstValue(headers['x-forwarded-port']) : undefined
  const port = priorPort ?? (info.port === undefined ? undefined : String(info.port))
  if (port === undefined) delete headers['x-forwarded-port']
  else headers['x-forwarded-port'] = port
  const priorForwarded = info.trusted ? joinValues(headers.forwarded) : undefined
  const element = forwardedElement(info)
  headers.forwarded = priorForwarded === undefined ? element : `${priorForwarded}, ${element}`
  const priorRealIp = info.trusted ? firstValue(headers['x-real-ip']) : undefined
  headers['x-real-ip'] = priorRealIp ?? info.clientAddress
  headers[requestIdHeader] = info.requestId
}

// RFC 7239 section 4: `for=192.0.2.60;proto=http;host=school-a.example.org`; an IPv6 address is
// bracketed and, like a host with a port, quoted.
function forwardedElement (info: ForwardingInfo): string {
  const address = info.clientAddress.includes(':') ? `"[${info.clientAddress}]"` : info.clientAddress
  const host = info.host === undefined ? '' : `;host=${forwardedValue(info.host)}`
  return `for=${address}${host};proto=${info.protocol}`
}

function forwardedValue (value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`
}

// Removes every Domain attribute from a Set-Cookie line of cookie `name`, so that the browser
// keeps it for the one host that set it (host-only) instead of every sub-domain of the domain.
function hostOnlyLine (line: string, name: string): string {
  const firstSemicolon = line.indexOf(';')
  if (firstSemicolon === -1) return line
  const pair = line.slice(0, firstSemicolon)
  const equals = pair.indexOf('=')
  if (equals === -1 || pair.slice(0, equals).trim() !== name) return line
  const attributes = line.slice(firstSemicolon + 1).split(';')
  const kept = attributes.filter((attribute) => {
    const at = attribute.indexOf('=')
    return (at === -1 ? attribute : attribute.slice(0, at)).trim().toLowerCase() !== 'domain'
  })
  return kept.length === attributes.length ? line : [pair, ...kept].join(';')
}

function joinValues (value: string | string[] | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  return Array.isArray(value) ? value.join(', ') : value
}

function firstValue (value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value
  if (first === undefined || first === '') return undefined
  const comma = first.indexOf(',')
  return (comma === -1 ? first : first.slice(0, comma)).trim()
}
