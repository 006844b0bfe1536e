// Notices a SESSION_SECRET that does not match the legacy's SECRET_KEY. Such a ficus treats every
// signed-in user as signed out (and strips their cookie before legacy) without any other sign:
// so when most of the signed session cookies of a window fail their signature check, it says so,
// once per window, and counts every check.
import type { SessionIdSigner } from './signer.ts'

export const SIGNATURE_WATCH_DEFAULTS = Object.freeze({
  windowMs: 60_000,
  /** Fewer checks than this in a window prove nothing (a few forged or stale cookies are normal). */
  minChecks: 20,
  /** Share of failed checks above which the secret is suspect. */
  failShare: 0.5
})

export interface SignatureAlert {
  readonly checked: number
  readonly failed: number
  readonly windowMs: number
}

export interface SignatureWatchOptions {
  readonly windowMs?: number
  readonly minChecks?: number
  readonly failShare?: number
  /** Called at most once per window, when most checks of the window failed. */
  readonly onAlert: (alert: SignatureAlert) => void
  readonly now?: () => number
}

export class SignatureWatch {
  readonly #windowMs: number
  readonly #minChecks: number
  readonly #failShare: number
  readonly #onAlert: (alert: SignatureAlert) => void
  readonly #now: () => number
  #windowStart = -Infinity
  #checked = 0
  #failed = 0
  #alerted = false
  /** Every check since start, for the metrics. */
  valid = 0
  invalid = 0
  alerts = 0

  constructor (options: SignatureWatchOptions) {
    this.#windowMs = options.windowMs ?? SIGNATURE_WATCH_DEFAULTS.windowMs
    this.#minChecks = options.minChecks ?? SIGNATURE_WATCH_DEFAULTS.minChecks
    this.#failShare = options.failShare ?? SIGNATURE_WATCH_DEFAULTS.failShare
    this.#onAlert = options.onAlert
    this.#now = options.now ?? Date.now
  }

  record (valid: boolean): void {
    const now = this.#now()
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now
      this.#checked = 0
      this.#failed = 0
      this.#alerted = false
    }
    this.#checked++
    if (valid) this.valid++
    else {
      this.invalid++
      this.#failed++
    }
    if (!this.#alerted && this.#checked >= this.#minChecks && this.#failed > this.#failShare * this.#checked) {
      this.#alerted = true
      this.alerts++
      this.#onAlert({ checked: this.#checked, failed: this.#failed, windowMs: this.#windowMs })
    }
  }
}

/** The same signer, every verification of a cookie value recorded by `watch`. */
export function watchedSigner (signer: SessionIdSigner, watch: SignatureWatch): SessionIdSigner {
  return {
    name: signer.name,
    sign: (id) => signer.sign(id),
    unsign: (value) => {
      const id = signer.unsign(value)
      watch.record(id !== undefined)
      return id
    }
  }
}
