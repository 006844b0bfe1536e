// A school as the edge sees it: the sub-domain label that names it, and what routing needs to
// know about it. Registries build these once and hand out the same frozen object every time.

export const TENANT_STATUSES = ['active', 'maintenance', 'suspended'] as const
export type TenantStatus = typeof TENANT_STATUSES[number]

export interface Tenant {
  /** The sub-domain label: `school-a` in `school-a.example.org`. Lower case. */
  readonly id: string
  readonly name: string
  readonly status: TenantStatus
  /** Named groups of schools (`pilot`, `wave-1`, ...) that flags can target. */
  readonly cohorts: readonly string[]
  /** Connection string of the school's own database, when the registry knows it. */
  readonly databaseUrl?: string
  /** The legacy shard the school lives on (a shard of LEGACY_UPSTREAMS); undefined: the main one. */
  readonly legacy?: string
}

/** A legacy shard name, as LEGACY_UPSTREAMS names them. */
export const LEGACY_SHARD_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/

/** A tenant label is one DNS label: lower-case letters, digits and inner hyphens. */
export const TENANT_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
