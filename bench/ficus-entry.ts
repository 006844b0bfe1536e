// ficus as proxy/main.ts starts it (same config, sessions, tenant registry with the schools'
// databases, flags file, buildProxy, every migrated route), plus the bench's own migrated routes,
// and without the admin listener, the demo app, metrics of the process or pre-warming.
//   node bench/ficus-entry.ts [--decision=flags|skip]
// `--decision=skip` swaps the flag reader for a constant one: the same routes, hooks and
// forwarding, with only the flag evaluation taken out. That pair measures what flags cost.
import { parseArgs } from 'node:util'
import { Flags, type FlagReader } from '../flags/flags.ts'
import type { FlagContext } from '../flags/flag-context.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import { migratedRoute, type MigratedRoute } from '../core/route.ts'
import { readRegister } from '../new-routes/attendance-register/queries.ts'
import { tenantDatabase } from '../tenant-db/index.ts'
import { parseConfig } from '../proxy/config.ts'
import { createLogger } from '../proxy/logger.ts'
import { buildProxy } from '../proxy/server.ts'
import { openTenantRegistry } from '../proxy/tenant-registry.ts'
import { createSessions } from '../sessions/config.ts'
import { BENCH_FLAGS, BENCH_PATHS } from './lib/fixtures.ts'

// Scenario (b): what a migrated handler costs when it has its answer in memory. fastify
// serialises the object on every request, as it would for a handler's query result.
const MIGRATED_BODY = Object.freeze({
  school: 'bench',
  classes: Array.from({ length: 12 }, (_, i) => ({ id: `class-${i}`, name: `Class ${i + 1}`, present: 25 - (i % 4), absent: i % 4 }))
})

/**
 * The bench's migrated routes. (a) and the 100 KiB path are declared with a flag that is off for
 * every school the load visits, so each request is decided and then sent to legacy.
 * (c) and (d) use ficus's own migrated routes (`GET /me`, `GET /attendance/:classId`), whose
 * flags the bench's flags file turns on for every school.
 */
export const benchRoutes: readonly MigratedRoute[] = [
  migratedRoute({
    name: 'bench.legacy-small',
    method: 'GET',
    url: BENCH_PATHS.small,
    flag: BENCH_FLAGS.small,
    access: 'public',
    handler: async () => ({ servedBy: 'new' })
  }),
  migratedRoute({
    name: 'bench.legacy-large',
    method: 'GET',
    url: BENCH_PATHS.large,
    flag: BENCH_FLAGS.large,
    access: 'public',
    handler: async () => ({ servedBy: 'new' })
  }),
  migratedRoute({
    name: 'bench.migrated-json',
    method: 'GET',
    url: BENCH_PATHS.migrated,
    flag: BENCH_FLAGS.migrated,
    access: 'public',
    handler: async () => MIGRATED_BODY
  }),
  // (d-hot-3rt): the attendance register read as one statement in db.transaction, i.e. BEGIN +
  // SET LOCAL, the SELECT and COMMIT in three round trips, against (d-hot)'s one.
  migratedRoute<{ Params: { classId: string }, Querystring: { date: string } }>({
    name: 'bench.register-three-round-trips',
    method: 'GET',
    url: '/bench/register-3rt/:classId',
    flag: BENCH_FLAGS.database,
    handler: async (request, reply) => {
      const db = tenantDatabase(request.tenant)
      const register = await readRegister({ query: (text, values) => db.transaction((tx) => tx.query(text, values)) }, request.params.classId, request.query.date)
      return register ?? reply.code(404).send({ error: 'no such class' })
    }
  })
]

const ON_FOR_EVERY_SCHOOL: ReadonlySet<string> = new Set([BENCH_FLAGS.migrated, BENCH_FLAGS.session, BENCH_FLAGS.database])

/** Answers as the flags file does for the bench's flags, without evaluating anything. */
class ConstantFlags implements FlagReader {
  isGone (): boolean { return false }

  isReady (): boolean {
    return true
  }

  isEnabled (flag: string, _context: FlagContext): boolean {
    return ON_FOR_EVERY_SCHOOL.has(flag)
  }
}

const { values } = parseArgs({ options: { decision: { type: 'string', default: 'flags' } } })
if (values.decision !== 'flags' && values.decision !== 'skip') throw new Error('--decision must be flags or skip')

const config = parseConfig(process.env)
const logger = createLogger(config.logLevel)
const sessions = createSessions(config.sessions)
// File registry with embedded databases, or the `tenants` table with pooled PostgreSQL (DATABASE_URL).
const registry = await openTenantRegistry(config, logger)
const fileFlags = await Flags.fromFile(config.flagsFile, logger, config.flagsPollMs)
const flags: FlagReader = values.decision === 'skip' ? new ConstantFlags() : fileFlags

const app = await buildProxy({ config, registry, flags, routes: [...migratedRoutes, ...benchRoutes], logger, sessions })
await app.listen({ port: config.port, host: config.host })

const stop = async (): Promise<void> => {
  await app.close()
  await fileFlags.close()
  await registry.close()
  // --cpu-prof writes its profile on a normal exit, so this exit must stay graceful.
  process.exit(0)
}
process.once('SIGTERM', () => void stop())
process.once('SIGINT', () => void stop())
