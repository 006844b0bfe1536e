// Legacy's answer to an upgrade request, read off the raw socket: its head is parsed (strictly:
// anything Node's own parser would refuse is refused) and written back to the client under the
// same header rules as any legacy response, so a 101 cannot carry what another answer may not.
import type { Headers, ResponseHeaderRules } from './headers.ts'
import { legacyResponseHeaders } from './headers.ts'

// Node's default --max-http-header-size: a head any larger is not an answer ficus passes on.
const MAX_HEAD_BYTES = 16 * 1024
const HEAD_END = Buffer.from('\r\n\r\n')

export interface UpgradeResponse {
  readonly statusCode: number
  readonly reason: string
  /** Lower-case names; a repeated header keeps every value, in order. */
  readonly headers: Headers
}

/** Collects legacy's bytes until the response head is complete. */
export class ResponseHeadReader {
  #buffered: Buffer = Buffer.alloc(0)

  /**
   * Adds `chunk`; returns the head and the bytes after it once the head is complete, undefined
   * while it is not. Throws when the head is too long or malformed.
   */
  push (chunk: Buffer): { response: UpgradeResponse, rest: Buffer } | undefined {
    const searchFrom = Math.max(0, this.#buffered.length - (HEAD_END.length - 1))
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk])
    const end = this.#buffered.indexOf(HEAD_END, searchFrom)
    if (end === -1) {
      if (this.#buffered.length > MAX_HEAD_BYTES) throw new Error(`upgrade response head over ${MAX_HEAD_BYTES} bytes`)
      return undefined
    }
    if (end > MAX_HEAD_BYTES) throw new Error(`upgrade response head over ${MAX_HEAD_BYTES} bytes`)
    return { response: parseHead(this.#buffered.subarray(0, end).toString('latin1')), rest: this.#buffered.subarray(end + HEAD_END.length) }
  }
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d) ([\t\x20-\x7e\x80-\xff]*)$/
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t ]*([\t\x20-\x7e\x80-\xff]*?)[\t ]*$/

function parseHead (head: string): UpgradeResponse {
  const lines = head.split('\r\n')
  const status = STATUS_LINE.exec(lines[0] ?? '')
  if (status === null) throw new Error('upgrade response has no valid status line')
  const statusCode = Number(status[1])
  // Another head would follow an interim answer, and the tunnel would pass it on unread.
  if (statusCode < 200 && statusCode !== 101) throw new Error(`upgrade answered with interim status ${statusCode}`)
  const headers: Headers = {}
  for (let i = 1; i < lines.length; i++) {
    // No obsolete line folding, bare CR or LF, or control characters: each reads two ways.
    const header = HEADER_LINE.exec(lines[i] as string)
    if (header === null) throw new Error('upgrade response has a malformed header line')
    const name = (header[1] as string).toLowerCase()
    const value = header[2] as string
    const prior = headers[name]
    headers[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value]
  }
  return { statusCode, reason: status[2] as string, headers }
}

/** Whether legacy switched to WebSocket: the one protocol whose frames ficus can close cleanly. */
export function switchedToWebSocket (response: UpgradeResponse): boolean {
  const upgrade = response.headers.upgrade
  return response.statusCode === 101 && typeof upgrade === 'string' && upgrade.trim().toLowerCase() === 'websocket'
}

/**
 * The head the client receives. A 101 keeps what switching needs: `Connection: Upgrade`, legacy's
 * `Upgrade` and every `Sec-WebSocket-*`. Any other answer keeps its body's framing
 * (Transfer-Encoding) and says `Connection: close`, since the tunnel ends with it.
 */
export function clientResponseHead (response: UpgradeResponse, rules: ResponseHeaderRules): string {
  const headers = legacyResponseHeaders(response.headers, rules)
  if (response.statusCode === 101) {
    headers.connection = 'Upgrade'
    headers.upgrade = response.headers.upgrade
    for (const name in response.headers) if (name.startsWith('sec-websocket-')) headers[name] = response.headers[name]
  } else {
    const framing = response.headers['transfer-encoding']
    if (framing !== undefined) headers['transfer-encoding'] = framing
    headers.connection = 'close'
  }
  return httpHead(`HTTP/1.1 ${response.statusCode} ${response.reason}`, headers)
}

/** A start line and headers as HTTP/1.1 text, a repeated header as one line per value. */
export function httpHead (startLine: string, headers: Headers): string {
  let head = `${startLine}\r\n`
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    if (Array.isArray(value)) for (const item of value) head += `${name}: ${item}\r\n`
    else head += `${name}: ${value}\r\n`
  }
  return head + '\r\n'
}
