import type { Tenant } from './tenant.ts'

/**
 * Where the edge looks schools up. `get` is synchronous and answers from memory because it runs
 * on every request; implementations refresh their snapshot in the background and replace it whole.
 */
export interface TenantRegistry {
  /** Loads the first snapshot; rejects when there is none to serve from. */
  start (): Promise<void>
  get (id: string): Tenant | undefined
  all (): Iterable<Tenant>
  readonly size: number
  /**
   * Moves whenever the snapshot changes (a reload that changed nothing may leave it): what was
   * derived from all() is still current while it reads the same.
   */
  readonly version: number
  /** Describes the source for logs and /readyz (never a password). */
  readonly source: string
  close (): Promise<void>
  /** Re-reads the source now (SIGHUP), for registries that read a file. */
  reload? (): void
}
