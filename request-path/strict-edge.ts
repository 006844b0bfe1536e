// Request shapes the edge refuses before anything else looks at them, so that nothing a strict
// HTTP/1.1 server would refuse is forwarded to a legacy server that might read it another way:
// request lines of other HTTP versions, TRACE and CONNECT, protocol upgrades (no tunnel exists
// yet), and GET or HEAD requests that carry a body (legacy servers disagree on where such a
// request ends, which is how requests are smuggled).
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { CommonErrors } from '../core/errors.ts'
import type { FicusError } from '../errors/index.ts'
import { EdgeErrors } from './errors.ts'
import { errorPage } from './error-reply.ts'
import { pendingUpgrade } from '../legacy-adapter/tunnel.ts'

const REFUSED_METHODS: ReadonlySet<string> = new Set(['TRACE', 'CONNECT'])

/** The refusal this request gets, or undefined when it may go on. */
export function edgeRefusal (raw: IncomingMessage): FicusError | undefined {
  if (raw.httpVersionMajor !== 1 || raw.httpVersionMinor > 1) {
    return EdgeErrors.FICUS_ERR_HTTP_VERSION_UNSUPPORTED(`HTTP/${raw.httpVersion}`)
  }
  const method = raw.method ?? ''
  if (REFUSED_METHODS.has(method)) return EdgeErrors.FICUS_ERR_METHOD_UNSUPPORTED(method)
  const headers = raw.headers
  if (headers.upgrade !== undefined) {
    // Through the upgrade listener (legacy-adapter/tunnel.ts) an upgrade may be tunnelled; its
    // body would be read by nobody, so an upgrade request carries none. Elsewhere node serves the
    // offer as a plain request, which only a bare h2c offer may be.
    const listened = pendingUpgrade(raw) !== undefined
    if (listened ? hasBody(raw) : !onlyH2c(headers.upgrade)) return CommonErrors.FICUS_ERR_UPGRADE_UNSUPPORTED(headers.upgrade.slice(0, 64))
  }
  if ((method === 'GET' || method === 'HEAD') && hasBody(raw)) {
    return EdgeErrors.FICUS_ERR_BODY_NOT_ALLOWED(method)
  }
  return undefined
}

// An offer of cleartext HTTP/2 may be ignored (RFC 9110 section 7.8): the client sent a complete
// HTTP/1.1 request and reads an HTTP/1.1 answer. Any other upgrade expects its own protocol back.
function onlyH2c (upgrade: string): boolean {
  return upgrade.split(',').every((token) => token.trim().toLowerCase() === 'h2c')
}

function hasBody (raw: IncomingMessage): boolean {
  const length = raw.headers['content-length']
  return (length !== undefined && length !== '0') || raw.headers['transfer-encoding'] !== undefined
}

const EDGE_CODES: ReadonlySet<string> = new Set(['FICUS_ERR_HTTP_VERSION_UNSUPPORTED', 'FICUS_ERR_METHOD_UNSUPPORTED', 'FICUS_ERR_UPGRADE_UNSUPPORTED', 'FICUS_ERR_BODY_NOT_ALLOWED'])

/** A refusal of the client's request shape: a 5xx status among them is no failure of ficus's. */
export function isEdgeRefusal (error: FicusError): boolean {
  return EDGE_CODES.has(error.code)
}

// After these the connection is closed rather than kept alive: its framing is not trusted, or the
// rest of an over-limit body would have to be read first (the 413 is sent before it arrives).
export function closesConnection (error: FicusError): boolean {
  return error.statusCode === 413 || EDGE_CODES.has(error.code)
}

/**
 * Node hands CONNECT to a `connect` listener instead of the request handler, and with none it
 * drops the connection without a word; this one answers 501 and closes.
 */
export function refuseConnect (server: Server): void {
  server.on('connect', (_request: IncomingMessage, socket: Duplex) => {
    const error = EdgeErrors.FICUS_ERR_METHOD_UNSUPPORTED('CONNECT')
    const body = errorPage(error, '-')
    socket.on('error', () => socket.destroy())
    socket.end(`HTTP/1.1 ${error.statusCode} Not Implemented\r\nContent-Type: text/html; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  })
}
