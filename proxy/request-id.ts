// Request ids ficus makes up itself: a random prefix drawn once per process, then a counter.
// Unique across processes and restarts like a UUID (48 random bits per process, workers each
// draw their own) at the cost of an increment instead of a random UUID per request.
import { randomBytes } from 'node:crypto'

/** What a request id may look like, whether ficus made it or a trusted proxy supplied it. */
export const REQUEST_ID_SYNTAX = /^[A-Za-z0-9._:-]{1,128}$/

export class RequestIds {
  readonly #prefix: string
  #next = 0

  constructor (prefix: string = randomBytes(6).toString('hex')) {
    if (!REQUEST_ID_SYNTAX.test(`${prefix}-0`)) throw new TypeError(`request id prefix must match ${String(REQUEST_ID_SYNTAX)}, got ${prefix}`)
    this.#prefix = `${prefix}-`
  }

  /** `3f9a1c0b7e2d-1k`: the process's prefix, then the count in base 36. */
  next (): string {
    return this.#prefix + (++this.#next).toString(36)
  }
}
