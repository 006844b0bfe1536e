// What a stage of the request path is: up to three steps, each taking the exchange. The path
// (index.ts) runs the stages' steps in the order of its list, at three points of fastify's
// lifecycle: before the body is read, before the answer's first byte, once the answer is written.
import type { Exchange } from './exchange.ts'

/** A request step's outcome when the stage has sent the request on its way (to legacy): nothing more of the path runs before the answer. */
export const HANDED_OVER: unique symbol = Symbol('ficus.handedOver')
/** A send step's outcome when this send is dropped: the answer comes from elsewhere (a fallback). */
export const ABANDON: unique symbol = Symbol('ficus.abandon')

/** undefined: on to the next stage. An Error: refused, answered by the error stage. */
export type RequestOutcome = undefined | Error | typeof HANDED_OVER

export interface Stage {
  readonly name: string
  /** Before the body is read: synchronous and from memory. */
  onRequest? (exchange: Exchange): RequestOutcome
  /** Before the answer's first byte: the payload to send on (the same or a wrapper), or ABANDON. */
  onSend? (exchange: Exchange, payload: unknown): unknown
  /** Once the answer is written, or the client has gone. */
  onResponse? (exchange: Exchange): void
}
