// What ficus warms before /readyz says ready: a connection to each legacy upstream through the
// legacy adapter's own pool, and the school databases PREWARM_SCHOOLS names. Kept apart from the
// composition root so either step can be replaced without touching the rest of the wiring.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { legacyPrewarmOutcome, type Prewarm } from '../safety/lifecycle.ts'
import { openPrewarmSchools, selectPrewarmSchools } from '../safety/prewarm-schools.ts'
import { tenantDatabase } from '../tenant-db/index.ts'
import type { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Config } from './config.ts'

/** The readiness step name of one upstream's pre-warm ('legacy' alone with LEGACY_URL). */
export function prewarmStepOf (config: Config, upstream: string): string {
  return config.legacyTable !== undefined ? `legacy ${upstream}` : 'legacy'
}

/** One step per legacy upstream, each opening PREWARM_LEGACY_CONNECTIONS connections through its own pool. */
export function addLegacyPrewarm (prewarm: Prewarm, app: FastifyInstance, config: Config, router: LegacyRouter): void {
  if (config.prewarmLegacyConnections <= 0 || config.legacyUrl === undefined) return
  for (const upstream of router.upstreams) {
    // Sent at once, straight through the legacy adapter's own pool, so each opens a connection
    // there; never through the public edge, so they are not traffic (not counted, not logged).
    prewarm.add({
      name: prewarmStepOf(config, upstream.name),
      run: async () => legacyPrewarmOutcome(await app.legacyPrewarm(upstream, config.prewarmPath, config.prewarmLegacyConnections), config.prewarmPath)
    })
  }
}

/** Opens the databases of the schools PREWARM_SCHOOLS names; fails (best effort) naming what it could not. */
export function addSchoolPrewarm (prewarm: Prewarm, config: Config, registry: TenantRegistry, logger: FastifyBaseLogger): void {
  if (config.prewarmSchools.length === 0) return
  prewarm.add({
    name: 'school databases',
    run: async () => {
      const { schools, unknown } = selectPrewarmSchools(config.prewarmSchools, registry.all())
      const { tenantDb } = config
      const outcome = await openPrewarmSchools(schools, async (tenant) => { await tenantDatabase(tenant).query('SELECT 1') }, {
        concurrency: config.prewarmConcurrency,
        timeoutMs: config.prewarmTimeoutMs,
        max: tenantDb.databaseUrl === undefined ? tenantDb.pgliteMax : tenantDb.poolsMax
      })
      logger.info({ selected: schools.length, opened: outcome.opened, failed: outcome.failed.length, skipped: outcome.skipped }, 'school databases pre-warmed')
      const problems = [
        ...(unknown.length > 0 ? [`PREWARM_SCHOOLS names ${unknown.join(', ')}, not in the registry`] : []),
        ...(outcome.failed.length > 0 ? [`${outcome.failed.length} of ${schools.length} failed (first: ${outcome.failed[0]?.id}: ${outcome.failed[0]?.error})`] : []),
        ...(outcome.skipped > 0 ? [`${outcome.skipped} of ${schools.length} left closed (pool cap or PREWARM_TIMEOUT_MS)`] : [])
      ]
      if (problems.length > 0) throw new Error(`${outcome.opened} opened; ${problems.join('; ')}`)
    }
  })
}
