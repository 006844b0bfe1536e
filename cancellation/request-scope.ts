// One cancellation signal per request served by a new handler. It fires when the client goes
// away, when the handler's deadline passes and when shutdown's grace ends; ficus's own calls made
// on the request's behalf (school database, session store) find it without being handed it, as
// the handler runs inside its scope (AsyncLocalStorage), so a handler cannot forget to pass it on.
import { AsyncLocalStorage } from 'node:async_hooks'
import { FicusError } from '../errors/index.ts'
import { CancellationErrors } from './errors.ts'

export const CANCEL_REASONS = ['client', 'deadline', 'shutdown'] as const
export type CancelReason = typeof CANCEL_REASONS[number]

const DETAIL: Readonly<Record<CancelReason, string>> = {
  client: 'the client went away',
  deadline: 'its deadline passed',
  shutdown: 'ficus is shutting down'
}

export class RequestScope {
  readonly requestId: string
  readonly #controller = new AbortController()
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

  /** Fires the signal; true when this call fired it while the handler was still running. */
  cancel (reason: CancelReason): boolean {
    if (this.#reason !== undefined) return false
    this.#reason = reason
    this.#controller.abort(CancellationErrors.FICUS_ERR_REQUEST_CANCELLED(DETAIL[reason]))
    return this.#running
  }

  readonly #stop = (): void => { this.#running = false }
}

const storage = new AsyncLocalStorage<RequestScope>()

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
