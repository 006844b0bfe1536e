// ficus as proxy/main.ts starts it (createFicus with the same config: sessions, tenant registry
// with the schools' databases, flags file, every migrated route), plus the bench's own migrated
// routes, and without listening on the admin port, the console, metrics of the process or pre-warming.
//   node bench/ficus-entry.ts [--decision=flags|skip] [--lane=on|off]
// `--decision=skip` swaps the flag reader for a constant one: the same routes, hooks and
// forwarding, with only the flag evaluation taken out. That pair measures what flags cost.
import { parseArgs } from 'node:util'
import type { FlagReader } from '../flags/flags.ts'
import type { FlagContext } from '../flags/flag-context.ts'
import { migratedRoutes } from '../new-routes/index.ts'
import { migratedRoute, type MigratedRoute } from '../core/route.ts'
import { readRegister } from '../new-routes/attendance-register/queries.ts'
import { tenantDatabase } from '../tenant-db/index.ts'
import { parseConfig } from '../proxy/config.ts'
import { createFicus } from '../proxy/create-ficus.ts'
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

const { values } = parseArgs({ options: { decision: { type: 'string', default: 'flags' }, lane: { type: 'string', default: 'on' } } })
if (values.decision !== 'flags' && values.decision !== 'skip') throw new Error('--decision must be flags or skip')
if (values.lane !== 'on' && values.lane !== 'off') throw new Error('--lane must be on or off')

const config = parseConfig(process.env)
// The tenant registry (file with embedded databases, or DATABASE_URL's `tenants` table) and the
// flags file are opened as main.ts opens them; only the flag reader of --decision=skip is the bench's.
const ficus = await createFicus(config, {
  routes: [...migratedRoutes, ...benchRoutes],
  ...(values.decision === 'skip' ? { flags: new ConstantFlags() } : {}),
  // --lane=off: every request through fastify's routing and the stages (the legacy lane's baseline).
  ...(values.lane === 'off' ? { legacyLane: false } : {}),
  processMetrics: false,
  console: false
})
await ficus.app.listen({ port: config.port, host: config.host })

const stop = async (): Promise<void> => {
  await ficus.close()
  // --cpu-prof writes its profile on a normal exit, so this exit must stay graceful.
  process.exit(0)
}
process.once('SIGTERM', () => void stop())
process.once('SIGINT', () => void stop())
