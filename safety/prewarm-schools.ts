// Which schools' databases are opened before /readyz says ready (PREWARM_SCHOOLS), and opening
// them within bounds: entries name a school (`school-a`), a cohort (`cohort:pilot`) or every
// active school (`all-active`); at most `concurrency` are opened at once, none is started after
// the deadline, and no more than the pool cap, since opening more would close the first ones.
import type { Tenant } from '../tenants/tenant.ts'

export const ALL_ACTIVE = 'all-active'
export const COHORT_PREFIX = 'cohort:'
/** What one PREWARM_SCHOOLS entry may be besides a school id. */
export const COHORT_ENTRY_PATTERN = /^cohort:[a-z0-9][a-z0-9._-]*$/

export interface PrewarmSelection {
  /** Schools to open, in registry order for cohorts and all-active, without repeats. */
  readonly schools: readonly Tenant[]
  /** Named schools that are not in the registry. */
  readonly unknown: readonly string[]
}

/** The schools PREWARM_SCHOOLS names. Cohorts and all-active take active schools only. */
export function selectPrewarmSchools (entries: readonly string[], tenants: Iterable<Tenant>): PrewarmSelection {
  const all = [...tenants]
  const byId = new Map(all.map((tenant) => [tenant.id, tenant]))
  const chosen = new Map<string, Tenant>()
  const unknown: string[] = []
  for (const entry of entries) {
    if (entry === ALL_ACTIVE) {
      for (const tenant of all) if (tenant.status === 'active') chosen.set(tenant.id, tenant)
    } else if (entry.startsWith(COHORT_PREFIX)) {
      const cohort = entry.slice(COHORT_PREFIX.length)
      for (const tenant of all) {
        if (tenant.status === 'active' && tenant.cohorts.some((name) => name.toLowerCase() === cohort)) chosen.set(tenant.id, tenant)
      }
    } else {
      const tenant = byId.get(entry)
      if (tenant === undefined) unknown.push(entry)
      else chosen.set(tenant.id, tenant)
    }
  }
  return { schools: [...chosen.values()], unknown }
}

export interface PrewarmBounds {
  /** Schools being opened at once, at most. */
  readonly concurrency: number
  /** No school is started after this long. */
  readonly timeoutMs: number
  /** Pools that may be open at once (TENANT_POOLS_MAX, or the embedded databases' cap). */
  readonly max: number
}

export interface PrewarmOutcome {
  readonly opened: number
  readonly failed: ReadonlyArray<{ readonly id: string, readonly error: string }>
  /** Selected but left closed: past the pool cap, or not started before the deadline. */
  readonly skipped: number
}

/** Opens the selected schools' databases within `bounds`; never throws. */
export async function openPrewarmSchools (schools: readonly Tenant[], open: (tenant: Tenant) => Promise<void>, bounds: PrewarmBounds): Promise<PrewarmOutcome> {
  const deadline = performance.now() + bounds.timeoutMs
  const queue = schools.slice(0, bounds.max)
  let skipped = schools.length - queue.length
  let opened = 0
  const failed: Array<{ id: string, error: string }> = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const tenant = queue[next++] as Tenant
      if (performance.now() >= deadline) {
        skipped++
        continue
      }
      try {
        await open(tenant)
        opened++
      } catch (error) {
        failed.push({ id: tenant.id, error: error instanceof Error ? error.message : String(error) })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(bounds.concurrency, queue.length)) }, worker))
  return { opened, failed, skipped }
}
