// One cancellation signal per request served by a new handler. It fires when the client goes
// away, when the handler's deadline passes and when shutdown's grace ends; ficus's own calls made
// on the request's behalf (school database, session store) find it without being handed it, as
// the handler runs inside its scope (AsyncLocalStorage), so a handler cannot forget to pass it on.
import { AsyncLocalStorage } from 'node:async_hooks'
import type { CancelReason } from '../core/cancel-reason.ts'
import { FicusError } from '../errors/index.ts'
import { CancellationErrors } from './errors.ts'

const DETAIL: Readonly<Record<CancelReason, string>> = {
  client: 'the client went away',
  deadline: 'its deadline passed',
  shutdown: 'ficus is shutting down'
}

export class RequestScope {
  readonly requestId: string
  readonly #controller = new AbortController()
  #forward: AbortController | undefined
  #reason: CancelReason | undefined
  #settled: Promise<unknown> = Promise.resolve()
  #running = false
  #committedWrites = 0

  constructor (requestId: string) {
    this.requestId = requestId
  }

  get signal (): AbortSignal { return this.#controller.signal }
  /** Why the signal fired; undefined while it has not. */
  get reason (): CancelReason | undefined { return this.#reason }
  /** Whether the handler is still running. */
  get running (): boolean { return this.#running }
  /** Resolves once the handler has settled (at once when it is not running). */
  get settled (): Promise<unknown> { return this.#settled }

  /** Transactions of this request that changed something and were committed. */
  get committedWrites (): number { return this.#committedWrites }

  noteCommittedWrite (): void {
    this.#committedWrites++
  }

  /** Runs the handler inside this scope and remembers when it settles. */
  run<T> (handler: () => T): T {
    this.#running = true
    let result: T
    try {
      result = storage.run(this, handler)
    } catch (error) {
      this.#running = false
      throw error
    }
    if (isPromise(result)) {
      this.#settled = result.then(this.#stop, this.#stop)
    } else {
      this.#running = false
    }
    return result
  }

  /**
   * The signal of the legacy request that replaces a failed handler (fallback): it fires when
   * the client goes away or at shutdown, but not at the deadline that caused the fallback.
   */
  get forwardSignal (): AbortSignal {
    if (this.#forward === undefined) {
      this.#forward = new AbortController()
      if (this.#reason !== undefined && this.#reason !== 'deadline') this.#forward.abort(this.#controller.signal.reason)
    }
    return this.#forward.signal
  }

  /** Fires the signal; true when this call fired it while the handler was still running. */
  cancel (reason: CancelReason): boolean {
    if (reason !== 'deadline' && this.#forward !== undefined && !this.#forward.signal.aborted) {
      this.#forward.abort(CancellationErrors.FICUS_ERR_REQUEST_CANCELLED(DETAIL[reason]))
    }
    if (this.#reason !== undefined) return false
    this.#reason = reason
    this.#controller.abort(CancellationErrors.FICUS_ERR_REQUEST_CANCELLED(DETAIL[reason]))
    return this.#running
  }

  readonly #stop = (): void => { this.#running = false }
}

const storage = new AsyncLocalStorage<RequestScope>()
const forwarding = new AsyncLocalStorage<AbortSignal>()

/** Runs `send` (a request to legacy) so that the legacy client finds `signal` and honours it. */
export function runForwarding<T> (signal: AbortSignal, send: () => T): T {
  return forwarding.run(signal, send)
}

/** The signal of the legacy request being sent now, if it has one. */
export function currentForwardSignal (): AbortSignal | undefined {
  return forwarding.getStore()
}

/** The scope of the request whose handler is running now, if any. */
export function currentScope (): RequestScope | undefined {
  return storage.getStore()
}

/** The error a cancelled call fails with (the signal's reason). */
export function cancelledError (signal: AbortSignal): FicusError {
  const reason: unknown = signal.reason
  return reason instanceof FicusError ? reason : CancellationErrors.FICUS_ERR_REQUEST_CANCELLED(String(reason))
}

/** A signal that never fires, for requests ficus forwards to legacy untouched. */
export const NEVER_CANCELLED: AbortSignal = new AbortController().signal

function isPromise (value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function'
}

/** Throws the cancellation error when the current request's signal has fired. */
export function throwIfCancelled (): void {
  const signal = storage.getStore()?.signal
  if (signal?.aborted === true) throw cancelledError(signal)
}
