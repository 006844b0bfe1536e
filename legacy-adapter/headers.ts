// Header rules for the hop between ficus and legacy. Everything end-to-end passes untouched;
// hop-by-hop headers stop here (RFC 9110 section 7.6.1), and the forwarding headers are
// ficus's own, believed from the client only when it is a trusted proxy.
import type { IncomingHttpHeaders } from 'node:http'

// Never forwarded either way. `expect` too: Node has already answered 100-continue to the client.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']
const REQUEST_ONLY = ['expect']

export function removeHopByHopRequestHeaders (headers: IncomingHttpHeaders): void {
  removeListed(headers)
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name]
  for (const name of REQUEST_ONLY) if (headers[name] !== undefined) delete headers[name]
}

export function removeHopByHopResponseHeaders (headers: Record<string, string | string[] | undefined>): void {
  removeListed(headers)
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name]
}

// A `Connection: close, x-foo` header makes x-foo hop-by-hop as well.
function removeListed (headers: Record<string, string | string[] | undefined>): void {
  const connection = headers.connection
  if (connection === undefined) return
  for (const value of Array.isArray(connection) ? connection : [connection]) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '') delete headers[name]
    }
  }
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
