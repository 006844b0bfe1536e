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
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
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
  pool.dispatch(dispatchOptions(forward), new ReplyForwardHandler(reply, rules, forward.throughReply, signal))
}

/**
 * What happens to a plain forward that legacy did not answer (nothing was written to the
 * client yet): the error, classified, is the caller's to answer. Never a second forward.
 */
export type PlainForwardFailure = (req: IncomingMessage, res: ServerResponse, error: Error) => void

/**
 * Sends a bodyless request through `pool` straight from Node's request to its response, with no
 * fastify reply: legacy's answer is written to `res`, and when legacy gives none `onFailure` answers.
 */
export function forwardPlain (pool: Pool, options: Dispatcher.DispatchOptions, req: IncomingMessage, res: ServerResponse, rules: ResponseHeaderRules, onFailure: PlainForwardFailure): void {
  pool.dispatch(options, new PlainForwardHandler(req, res, rules, onFailure))
}

function dispatchOptions (forward: Forward): Dispatcher.DispatchOptions {
  return { path: forward.path, method: forward.method as Dispatcher.HttpMethod, headers: forward.headers as Record<string, string>, body: forward.body }
}

/**
 * undici's dispatch handler for one forwarded request (the raw-header interface: no header object
 * is built), writing legacy's answer straight into the client's response. What a subclass adds:
 * the headers ficus set before forwarding, what happens once the answer's head is out, and who
 * answers when legacy gave no answer.
 */
abstract class ForwardHandler implements Dispatcher.DispatchHandler {
  protected readonly req: IncomingMessage
  protected readonly res: ServerResponse
  readonly #rules: ResponseHeaderRules
  protected abort: ((error?: Error) => void) | undefined
  protected resume: (() => void) | undefined
  /** Legacy's body on its way through `reply.send`; null when written straight to the client. */
  protected body: Readable | null = null
  protected started = false
  protected gone = false
  protected done = false

  readonly #onClose = (): void => {
    if (this.res.writableFinished) return
    this.gone = true
    this.abort?.(CLIENT_GONE)
  }

  readonly #onDrain = (): void => { this.resume?.() }

  constructor (req: IncomingMessage, res: ServerResponse, rules: ResponseHeaderRules) {
    this.req = req
    this.res = res
    this.#rules = rules
    res.on('close', this.#onClose)
  }

  onConnect (abort: (error?: Error) => void): void {
    this.abort = abort
    if (this.gone || this.res.destroyed) abort(CLIENT_GONE)
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx interim answers stay between ficus and legacy (Node has answered the client's Expect).
    if (statusCode < MIN_STATUS) return true
    this.resume = resume
    if (statusCode > MAX_STATUS) {
      this.abort?.(LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(`status ${statusCode}`))
      return false
    }
    const rules = this.#rules
    const servedBy = rules.servedByHeader
    const headers = endToEndRawResponseHeaders(rawHeaders, servedBy, rules.hostOnlyCookie)
    if (servedBy !== undefined) headers.push(servedBy, 'legacy')
    // Legacy answered before the client's body was all read: the connection cannot be reused.
    if (!this.req.complete) headers.push('connection', 'close')
    return this.start(statusCode, headers)
  }

  /** Writes the answer's head to the client; false (and the forward aborted) when Node refuses it. */
  protected start (statusCode: number, headers: string[]): boolean {
    const res = this.res
    this.addOwnHeaders(headers)
    try {
      res.writeHead(statusCode, headers)
    } catch (error) {
      // A header Node refuses to write: nothing has gone out, so ficus's error page can.
      this.abort?.(LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(undefined, { cause: error }))
      return false
    }
    this.started = true
    this.headWritten()
    res.on('drain', this.#onDrain)
    return true
  }

  /** Headers ficus set before forwarding, added to legacy's unless legacy's answer names them. */
  protected addOwnHeaders (_headers: string[]): void {}

  /** The answer's head is out. */
  protected headWritten (): void {}

  /** Legacy gave no answer and nothing has gone out: answer the client with ficus's error. */
  protected abstract failed (error: Error): void

  onData (chunk: Buffer): boolean {
    const body = this.body
    if (body !== null) return body.push(chunk)
    return this.res.write(chunk)
  }

  onComplete (): void {
    this.cleanUp()
    const body = this.body
    if (body !== null) body.push(null)
    else this.res.end()
  }

  onError (error: Error): void {
    this.cleanUp()
    if (this.started) {
      // Part of legacy's answer is out: the client sees the connection cut, never a truncated body that looks whole.
      const body = this.body
      if (body !== null) body.destroy(error)
      else this.res.destroy(error)
      return
    }
    if (this.gone) return
    this.failed(classify(error))
  }

  protected cleanUp (): void {
    this.done = true
    this.res.off('close', this.#onClose)
    this.res.off('drain', this.#onDrain)
  }
}

/** A forward answered through fastify's reply: its headers, its hijack, its error page, and a cancellation signal. */
class ReplyForwardHandler extends ForwardHandler {
  readonly #reply: FastifyReply
  readonly #throughReply: boolean
  readonly #signal: AbortSignal | undefined
  // Only a fallback's forward has a signal: no listener is made for the others.
  readonly #onSignal: (() => void) | undefined

  constructor (reply: FastifyReply, rules: ResponseHeaderRules, throughReply: boolean, signal: AbortSignal | undefined) {
    super(reply.request.raw, reply.raw, rules)
    this.#reply = reply
    this.#throughReply = throughReply
    this.#signal = signal
    if (signal !== undefined) {
      this.#onSignal = () => { this.abort?.(signal.reason as Error) }
      signal.addEventListener('abort', this.#onSignal, { once: true })
    }
  }

  override onConnect (abort: (error?: Error) => void): void {
    super.onConnect(abort)
    if (!this.gone && this.#signal?.aborted === true) abort(this.#signal.reason as Error)
  }

  protected override start (statusCode: number, headers: string[]): boolean {
    return this.#throughReply ? this.#startThroughReply(statusCode, headers) : super.start(statusCode, headers)
  }

  // Headers ficus set before forwarding (Connection: close while draining).
  protected override addOwnHeaders (headers: string[]): void {
    const own = this.#reply.getHeaders()
    for (const name in own) {
      const value = own[name]
      if (value !== undefined && !hasName(headers, name)) headers.push(name, String(value))
    }
  }

  protected override headWritten (): void {
    this.#reply.hijack()
  }

  #startThroughReply (statusCode: number, headers: string[]): boolean {
    const reply = this.#reply
    reply.code(statusCode)
    reply.headers(headerObject(headers))
    this.started = true
    const resume = this.resume
    const handler = this
    this.body = new Readable({
      read () { resume?.() },
      destroy (error, callback) {
        if (!handler.done) handler.abort?.(error ?? CLIENT_GONE)
        callback(error)
      }
    })
    reply.send(this.body)
    return true
  }

  protected failed (error: Error): void {
    if (!this.#reply.sent) this.#reply.send(error)
  }

  protected override cleanUp (): void {
    super.cleanUp()
    if (this.#onSignal !== undefined) this.#signal?.removeEventListener('abort', this.#onSignal)
  }
}

/** A forward straight from Node's request to its response (the legacy lane, request-path/legacy-lane.ts). */
class PlainForwardHandler extends ForwardHandler {
  readonly #onFailure: PlainForwardFailure

  constructor (req: IncomingMessage, res: ServerResponse, rules: ResponseHeaderRules, onFailure: PlainForwardFailure) {
    super(req, res, rules)
    this.#onFailure = onFailure
  }

  protected failed (error: Error): void {
    this.#onFailure(this.req, this.res, error)
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
