// The forwarder: one request to one legacy upstream over undici's dispatch API, the cheapest
// correct proxy Node has (undici's docs/examples/proxy): raw header lists both ways, the
// client's body streamed as undici's writer asks for it, legacy's body written as it arrives and
// paused while the client cannot keep up, the upstream request aborted when the client goes away
// or the request's forwarding signal fires. Never retried: a legacy 503 is an answer to pass on,
// and a request with a body must never be sent twice.
//
// Legacy's answer goes one of two ways. Plainly, it is written straight into the client's
// response (fastify's onSend hooks have nothing to do for it; its onResponse hooks still run).
// When something must see it on its way out (the safety net's copy for a shadow comparison, a
// fallback's late-send guard), it is handed to `reply.send` as a stream, as before.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'
import type { Dispatcher, Pool } from 'undici'
import { FicusError } from '../errors/index.ts'
import { LegacyErrors } from './errors.ts'
import { endToEndRawResponseHeaders, type ResponseHeaderRules } from './headers.ts'

// Upstream failures that mean "legacy is not there" rather than "legacy is slow".
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'])
const SLOW = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])
// ficus's own answers that a failed forward already carries: the body limit, a cancellation, a bad answer from legacy.
const PASSED_ON: ReadonlySet<string> = new Set(['FICUS_ERR_BODY_TOO_LARGE', 'FICUS_ERR_REQUEST_CANCELLED', 'FICUS_ERR_LEGACY_BAD_RESPONSE'])
// What fastify's reply.code accepts; anything else from legacy is not an answer to pass on.
const MIN_STATUS = 200
const MAX_STATUS = 599

/** The error a failed forward is answered with: 413, a cancellation, 504, 502. */
export function classify (error: Error): Error {
  let cause: unknown = error
  while (cause instanceof Error) {
    if (cause instanceof FicusError && PASSED_ON.has(cause.code)) return cause
    const code = (cause as NodeJS.ErrnoException).code
    if (code !== undefined && SLOW.has(code)) return LegacyErrors.FICUS_ERR_LEGACY_TIMEOUT(undefined, { cause: error })
    if (code !== undefined && UNREACHABLE.has(code)) return LegacyErrors.FICUS_ERR_LEGACY_UNAVAILABLE(undefined, { cause: error })
    if (cause.name === 'TimeoutError') return LegacyErrors.FICUS_ERR_LEGACY_TIMEOUT(undefined, { cause: error })
    cause = cause.cause
  }
  return LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(undefined, { cause: error })
}

export interface Forward {
  readonly path: string
  readonly method: string
  /** Already rewritten for legacy (headers.ts). */
  readonly headers: IncomingHttpHeaders
  readonly body: Readable | null
  /** Aborts the upstream request (a fallback's cancellation); undefined: only the client's close does. */
  readonly signal: AbortSignal | undefined
  /** Hand legacy's answer to `reply.send` as a stream, so fastify's onSend hooks see it. */
  readonly throughReply: boolean
}

const CLIENT_GONE = new Error('the client closed the connection')

/** Sends `forward` through `pool` and `reply`'s client gets legacy's answer, or ficus's error page. */
export function forwardToLegacy (pool: Pool, forward: Forward, reply: FastifyReply, rules: ResponseHeaderRules): void {
  const signal = forward.signal
  if (signal?.aborted === true) {
    reply.send(classify(signal.reason as Error))
    return
  }
  pool.dispatch({ path: forward.path, method: forward.method as Dispatcher.HttpMethod, headers: forward.headers as Record<string, string>, body: forward.body }, new ForwardHandler(reply, rules, forward.throughReply, signal))
}

/** undici's dispatch handler for one forwarded request (the raw-header interface: no header object is built). */
class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #reply: FastifyReply
  readonly #res: ServerResponse
  readonly #rules: ResponseHeaderRules
  readonly #throughReply: boolean
  readonly #signal: AbortSignal | undefined
  #abort: ((error?: Error) => void) | undefined
  #resume: (() => void) | undefined
  /** Legacy's body on its way through `reply.send`; null when written straight to the client. */
  #body: Readable | null = null
  #started = false
  #gone = false
  #done = false

  readonly #onClose = (): void => {
    if (this.#res.writableFinished) return
    this.#gone = true
    this.#abort?.(CLIENT_GONE)
  }

  readonly #onDrain = (): void => { this.#resume?.() }

  readonly #onSignal = (): void => { this.#abort?.(this.#signal?.reason as Error) }

  constructor (reply: FastifyReply, rules: ResponseHeaderRules, throughReply: boolean, signal: AbortSignal | undefined) {
    this.#reply = reply
    this.#res = reply.raw
    this.#rules = rules
    this.#throughReply = throughReply
    this.#signal = signal
    this.#res.on('close', this.#onClose)
    signal?.addEventListener('abort', this.#onSignal, { once: true })
  }

  onConnect (abort: (error?: Error) => void): void {
    this.#abort = abort
    if (this.#gone || this.#res.destroyed) abort(CLIENT_GONE)
    else if (this.#signal?.aborted === true) abort(this.#signal.reason as Error)
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx interim answers stay between ficus and legacy (Node has answered the client's Expect).
    if (statusCode < MIN_STATUS) return true
    this.#resume = resume
    if (statusCode > MAX_STATUS) {
      this.#abort?.(LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(`status ${statusCode}`))
      return false
    }
    const rules = this.#rules
    const servedBy = rules.servedByHeader
    const headers = endToEndRawResponseHeaders(rawHeaders, servedBy, rules.hostOnlyCookie)
    if (servedBy !== undefined) headers.push(servedBy, 'legacy')
    // Legacy answered before the client's body was all read: the connection cannot be reused.
    if (!this.#reply.request.raw.complete) headers.push('connection', 'close')
    return this.#throughReply ? this.#startThroughReply(statusCode, headers) : this.#startDirect(statusCode, headers)
  }

  #startDirect (statusCode: number, headers: string[]): boolean {
    const res = this.#res
    // Headers ficus set before forwarding (Connection: close while draining) go out too, unless
    // legacy's answer names them.
    const own = this.#reply.getHeaders()
    for (const name in own) {
      const value = own[name]
      if (value !== undefined && !hasName(headers, name)) headers.push(name, String(value))
    }
    try {
      res.writeHead(statusCode, headers)
    } catch (error) {
      // A header Node refuses to write: nothing has gone out, so ficus's error page can.
      this.#abort?.(LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(undefined, { cause: error }))
      return false
    }
    this.#started = true
    this.#reply.hijack()
    res.on('drain', this.#onDrain)
    return true
  }

  #startThroughReply (statusCode: number, headers: string[]): boolean {
    const reply = this.#reply
    reply.code(statusCode)
    reply.headers(headerObject(headers))
    this.#started = true
    const resume = this.#resume
    const handler = this
    this.#body = new Readable({
      read () { resume?.() },
      destroy (error, callback) {
        if (!handler.#done) handler.#abort?.(error ?? CLIENT_GONE)
        callback(error)
      }
    })
    reply.send(this.#body)
    return true
  }

  onData (chunk: Buffer): boolean {
    const body = this.#body
    if (body !== null) return body.push(chunk)
    return this.#res.write(chunk)
  }

  onComplete (): void {
    this.#cleanUp()
    const body = this.#body
    if (body !== null) body.push(null)
    else this.#res.end()
  }

  onError (error: Error): void {
    this.#cleanUp()
    if (this.#started) {
      // Part of legacy's answer is out: the client sees the connection cut, never a truncated body that looks whole.
      const body = this.#body
      if (body !== null) body.destroy(error)
      else this.#res.destroy(error)
      return
    }
    if (this.#gone || this.#reply.sent) return
    this.#reply.send(classify(error))
  }

  #cleanUp (): void {
    this.#done = true
    this.#res.off('close', this.#onClose)
    this.#res.off('drain', this.#onDrain)
    this.#signal?.removeEventListener('abort', this.#onSignal)
  }
}

// Repeated names become one list, as undici's parser makes them (reply.header keeps the last value).
function headerObject (headers: readonly string[]): Record<string, string | string[]> {
  // No prototype: a header named __proto__ is a header like any other.
  const object = Object.create(null) as Record<string, string | string[]>
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string
    const value = headers[i + 1] as string
    const prior = object[name]
    if (prior === undefined) object[name] = value
    else if (typeof prior === 'string') object[name] = [prior, value]
    else prior.push(value)
  }
  return object
}

function hasName (headers: readonly string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true
  return false
}

/** What one pre-warm request got: legacy's status and body, or ficus's error page when legacy was not reached. */
export interface PrewarmAnswer {
  readonly status: number
  readonly body: string
}

/**
 * Sends `connections` GETs of `path` at once through `pool`, so that each opens a connection of
 * its own there. Not client traffic: no hook, metric or access-log line sees them.
 */
export async function prewarmPool (pool: Pool, path: string, host: string, connections: number): Promise<PrewarmAnswer[]> {
  return await Promise.all(Array.from({ length: connections }, async () => {
    try {
      const answer = await pool.request({ path, method: 'GET', headers: { host, accept: 'application/json' } })
      return { status: answer.statusCode, body: await answer.body.text() }
    } catch (error) {
      const failure = classify(error as Error) as FicusError
      return { status: failure.statusCode, body: JSON.stringify({ error: { code: failure.code, message: failure.message } }) }
    }
  }))
}
