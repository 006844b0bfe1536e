// Why a request's cancellation signal fired: set by cancellation/request-scope.ts, reported by the
// safety nets and counted by metrics (the `reason` label, one series per value made up front).

export const CANCEL_REASONS = ['client', 'deadline', 'shutdown'] as const
export type CancelReason = typeof CANCEL_REASONS[number]
