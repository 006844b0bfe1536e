// Header rules for the hop between ficus and legacy. Everything end-to-end passes untouched;
// hop-by-hop headers stop here (RFC 9110 section 7.6.1), and the forwarding headers are
// ficus's own, believed from the client only when it is a trusted proxy.
import type { IncomingHttpHeaders } from 'node:http'

// Never forwarded either way. `expect` too: Node has already answered 100-continue to the client.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']
const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP)
const REQUEST_HOP_BY_HOP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'expect'])

type Headers = Record<string, string | string[] | undefined>

/** Removes, in one pass over the names, every hop-by-hop header and every header `Connection` lists. */
export function removeHopByHopRequestHeaders (headers: IncomingHttpHeaders): void {
  const listed = listedIn(headers.connection)
  for (const name in headers) {
    if (REQUEST_HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) delete headers[name]
  }
}

/**
 * The end-to-end headers of an upstream response, copied in one pass into a new object: deleting
 * from the parser's object would turn it into a slow dictionary for every later read.
 */
export function endToEndResponseHeaders (headers: Headers): Headers {
  const listed = listedIn(headers.connection)
  const kept: Headers = {}
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name) || (listed !== undefined && listed.has(name))) continue
    kept[name] = headers[name]
  }
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
  readonly requestId: string
  readonly trusted: boolean
}

/** Sets X-Forwarded-For/-Proto/-Host and the request id, after the client's hop-by-hop list is gone. */
export function setForwardingHeaders (headers: IncomingHttpHeaders, info: ForwardingInfo, requestIdHeader: string): void {
  const priorFor = info.trusted ? joinValues(headers['x-forwarded-for']) : undefined
  headers['x-forwarded-for'] = priorFor === undefined ? info.clientAddress : `${priorFor}, ${info.clientAddress}`
  const priorProto = info.trusted ? firstValue(headers['x-forwarded-proto']) : undefined
  headers['x-forwarded-proto'] = priorProto ?? info.protocol
  const priorHost = info.trusted ? firstValue(headers['x-forwarded-host']) : undefined
  const host = priorHost ?? info.host
  if (host === undefined) delete headers['x-forwarded-host']
  else headers['x-forwarded-host'] = host
  headers[requestIdHeader] = info.requestId
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
