// Test kit: a stand-in legacy backend that records every request exactly as it arrived on the
// wire (request line, raw header lines, body bytes) and answers with whatever the test asks for.
// It is a plain node:http server on a loopback port 0, so what it records is what ficus sent.
import { createHash, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** What startRecordingLegacy needs from a tap test: only a place to register cleanup. */
export interface TeardownHost {
  teardown (fn: () => unknown): void
}

// Bodies up to this size are kept for byte comparison; larger ones only by hash and length.
const KEPT_BODY_BYTES = 4 * 1024 * 1024
export const DEFAULT_WAIT_MS = 5_000
const POLL_MS = 10

export interface RecordedRequest {
  readonly method: string
  /** The request target exactly as received: node:http does not normalise `req.url`. */
  readonly target: string
  readonly requestLine: string
  /** Header lines as received, name and value alternating, names in the sender's case. */
  readonly rawHeaders: readonly string[]
  readonly headers: IncomingHttpHeaders
  /** Bytes of body received so far. */
  readonly bodyLength: number
  /** Set once the whole body has arrived. */
  readonly bodySha256: string | undefined
  /** The body, when it was no larger than KEPT_BODY_BYTES. */
  readonly body: Buffer | undefined
  readonly complete: boolean
  /** Resolves when the body has fully arrived; rejects if the sender gave up half way. */
  readonly ended: Promise<RecordedRequest>
  /** Every value of a header, case-insensitively, in arrival order, one entry per line. */
  values (name: string): string[]
}

export interface LegacyExchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly record: RecordedRequest
}

/** Answers a request; runs as soon as its headers arrive, while the body is still coming. */
export type LegacyHandler = (exchange: LegacyExchange) => void | Promise<void>

export interface RecordingLegacy {
  readonly server: Server
  readonly port: number
  /** http://127.0.0.1:port, what LEGACY_URL points at. */
  readonly url: string
  readonly requests: readonly RecordedRequest[]
  /** Replaces the handler for the requests that arrive from now on. */
  handle (handler: LegacyHandler): void
  /** Waits (bounded) until at least `count` requests have arrived, and returns them. */
  waitForRequests (count: number, timeoutMs?: number): Promise<readonly RecordedRequest[]>
  /** The only request received; fails if there were none or several. */
  sole (): RecordedRequest
  close (): Promise<void>
}

/** Answers 200 `legacy <method> <target>` once the body has arrived. */
export const echoHandler: LegacyHandler = async ({ res, record }) => {
  await record.ended.catch(() => undefined)
  if (res.destroyed) return
  const text = `legacy ${record.method} ${record.target}`
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

class Recording implements RecordedRequest {
  readonly method: string
  readonly target: string
  readonly requestLine: string
  readonly rawHeaders: readonly string[]
  readonly headers: IncomingHttpHeaders
  readonly ended: Promise<RecordedRequest>
  bodyLength = 0
  bodySha256: string | undefined
  body: Buffer | undefined
  complete = false
  readonly #hash: Hash = createHash('sha256')
  #chunks: Buffer[] | undefined = []

  constructor (req: IncomingMessage) {
    this.method = req.method ?? ''
    this.target = req.url ?? ''
    this.requestLine = `${this.method} ${this.target} HTTP/${req.httpVersion}`
    this.rawHeaders = Object.freeze([...req.rawHeaders])
    this.headers = req.headers
    this.ended = new Promise((resolve, reject) => {
      req.on('data', (chunk: Buffer) => {
        this.#hash.update(chunk)
        this.bodyLength += chunk.length
        if (this.#chunks !== undefined) {
          this.#chunks.push(chunk)
          if (this.bodyLength > KEPT_BODY_BYTES) this.#chunks = undefined
        }
      })
      req.once('end', () => {
        this.complete = true
        this.bodySha256 = this.#hash.digest('hex')
        this.body = this.#chunks === undefined ? undefined : Buffer.concat(this.#chunks)
        resolve(this)
      })
      req.once('error', reject)
      req.once('aborted', () => reject(new Error('the sender aborted the request body')))
    })
    // A test that never looks at `ended` must not crash the process with an unhandled rejection.
    this.ended.catch(() => undefined)
  }

  values (name: string): string[] {
    const wanted = name.toLowerCase()
    const found: string[] = []
    for (let i = 0; i + 1 < this.rawHeaders.length; i += 2) {
      if (this.rawHeaders[i]?.toLowerCase() === wanted) found.push(this.rawHeaders[i + 1] ?? '')
    }
    return found
  }
}

export async function startRecordingLegacy (t: TeardownHost, handler: LegacyHandler = echoHandler): Promise<RecordingLegacy> {
  const requests: Recording[] = []
  let current = handler
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const record = new Recording(req)
    requests.push(record)
    Promise.resolve(current({ req, res, record })).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(error))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)

  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    handle (next) { current = next },
    async waitForRequests (count, timeoutMs = DEFAULT_WAIT_MS) {
      await waitFor(() => requests.length >= count, timeoutMs, `legacy to receive ${count} request(s), got ${requests.length}`)
      return requests
    },
    sole () {
      if (requests.length !== 1) throw new Error(`expected legacy to receive exactly one request, got ${requests.length}: ${requests.map((r) => r.requestLine).join(' | ')}`)
      return requests[0] as Recording
    },
    close
  }
}

/**
 * `promise`, or a rejection naming `what` once `timeoutMs` has passed. The timer is cleared as soon
 * as `promise` settles: a pending one would hold the test process open for the whole bound.
 */
export async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `condition` until it holds, failing with `what` after `timeoutMs`. */
export async function waitFor (condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

/** Runs `fn` on every item with at most `limit` in flight, keeping the order of the results. */
export async function mapLimit<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}
