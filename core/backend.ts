// Which side answered a request, and why a migrated route fell back to legacy: the labels that the
// safety nets set, metrics count and the access log writes. Kept in the core so that none of those
// three has to import another to agree on them.

/** Which side answered, as metrics and the access log name it. `none`: ficus itself, before routing. */
export type BackendLabel = 'legacy' | 'new' | 'fallback' | 'shadow' | 'none'
export type FallbackReason = 'error' | 'status' | 'timeout'
