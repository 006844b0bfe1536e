// What the safety nets report while they work (shadow results, fallbacks, breaker transitions,
// cancellations) and the values they report. The metrics registry implements SafetyEvents; the
// contract is here so that safety and metrics never import each other.
import type { CancelReason } from './cancel-reason.ts'
import type { FallbackReason } from './backend.ts'

export type ShadowOutcome = 'match' | 'mismatch' | 'error'
export type ShadowDropReason = 'busy' | 'too_large' | 'incomplete' | 'draining'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerTransition {
  readonly key: string
  readonly from: BreakerState
  readonly to: BreakerState
  /** Requests and failures in the window when the breaker tripped. */
  readonly requests: number
  readonly failures: number
}

/** Where the safety nets report; the metrics registry implements it. */
export interface SafetyEvents {
  onShadowResult (route: string, cohort: string | undefined, outcome: ShadowOutcome): void
  onShadowDropped (route: string, reason: ShadowDropReason): void
  onFallback (route: string, reason: FallbackReason): void
  onBreakerTransition (route: string, transition: BreakerTransition): void
  /** A running new handler's signal fired. */
  onCancelled (route: string, reason: CancelReason): void
}
