// Stage 7b, shadow: a legacy-bound request the decide stage marked for comparison keeps a
// bounded copy of legacy's body as it streams to the client; once answered, the new handler is
// run on the same request in the background (safety/shadow.ts runs, compares and records). The
// replay calls the path in process: its raw request carries a symbol no client can send, so its
// exchange starts decided (backend `shadow`) and no header has to be recognised again.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import inject from 'light-my-request'
import type { SafetyNet } from '../safety/safety-net.ts'
import { BoundedTee, type ShadowJob } from '../safety/shadow.ts'
import type { Exchange } from './exchange.ts'
import { isStream } from './fall-back.ts'
import type { Stage } from './stage.ts'

const kShadowReplay = Symbol('ficus.shadowReplay')
type ReplayRequest = IncomingMessage & { [kShadowReplay]?: true }

const EMPTY = Buffer.alloc(0)
const NOT_FORWARDED_TO_SHADOW = ['accept-encoding', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer']

/** Whether this raw request is ficus's own shadow replay (then its exchange starts decided). */
export function isShadowReplay (raw: IncomingMessage): boolean {
  return (raw as ReplayRequest)[kShadowReplay] === true
}

export class ShadowStage implements Stage {
  readonly name = 'shadow'
  readonly #safety: SafetyNet
  readonly #maxBodyBytes: number
  #app: FastifyInstance | undefined
  #closing = false

  constructor (safety: SafetyNet) {
    this.#safety = safety
    this.#maxBodyBytes = safety.config.shadow.maxBodyBytes
    safety.replayWith((job) => this.#replay(job))
  }

  /** The app whose routes replays run through. */
  attach (app: FastifyInstance): void {
    this.#app = app
    // As app.inject would: no replay starts once the app is closing.
    app.addHook('preClose', (done) => { this.#closing = true; done() })
  }

  onSend (exchange: Exchange, payload: unknown): unknown {
    // HEAD has no body to copy (fastify never reads legacy's empty stream for it).
    if (!exchange.shadowing || exchange.request.method === 'HEAD' || !isStream(payload)) return payload
    const tee = new BoundedTee(this.#maxBodyBytes)
    exchange.capture = tee
    // Errors of the legacy stream reach the client through the tee, which fails with them.
    pipeline(payload, tee, () => {})
    return tee
  }

  onResponse (exchange: Exchange): void {
    const guard = exchange.guard
    if (!exchange.shadowing || guard === null) return
    const { request, reply } = exchange
    const runner = this.#safety.shadowRunner
    const capture = exchange.capture
    const head = request.method === 'HEAD'
    if (capture === null && !head) return
    if (capture?.overflowed === true) return runner.drop(guard.shadow, 'too_large')
    if ((capture !== null && !capture.complete) || !reply.raw.writableFinished) return runner.drop(guard.shadow, 'incomplete')
    const contentType = reply.getHeader('content-type')
    const encoding = reply.getHeader('content-encoding')
    const tenant = exchange.tenant as { id: string, cohorts: readonly string[] }
    runner.submit({
      record: guard.shadow,
      rules: guard.rules,
      tenant: tenant.id,
      cohort: tenant.cohorts[0],
      requestId: request.id,
      method: request.method,
      url: request.url,
      headers: { ...request.headers },
      legacyStatus: reply.statusCode,
      legacyContentType: typeof contentType === 'string' ? contentType : undefined,
      legacyEncoding: typeof encoding === 'string' ? encoding : undefined,
      legacyBody: capture === null ? EMPTY : capture.body()
    })
  }

  // Bound once: every replay enters the app's routing with the marker set on its raw request.
  readonly #dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    const app = this.#app
    if (app === undefined) throw new Error('the shadow stage is not attached to an app')
    ;(req as ReplayRequest)[kShadowReplay] = true
    app.routing(req, res)
  }

  async #replay (job: ShadowJob): Promise<{ status: number, contentType: string | undefined, body: Buffer }> {
    if (this.#closing) throw new Error('ficus is closing: no replay')
    const headers = { ...job.headers }
    for (const name of NOT_FORWARDED_TO_SHADOW) delete headers[name]
    const response = await inject(this.#dispatch, { method: job.method as 'GET', url: job.url, headers: headers as Record<string, string> })
    const contentType = response.headers['content-type']
    return { status: response.statusCode, contentType: typeof contentType === 'string' ? contentType : undefined, body: response.rawPayload }
  }
}
