// Scenario (c)'s Redis: sessions written before the run, in the JSON codec's format, under a key
// prefix of this run only, and the server's command counters read before and after a measured
// run. The counters are server-wide: other clients of the same Redis show up in them, so the
// bench reads them only around its own runs and says which commands it counted.
import { Redis } from 'ioredis'
import { schoolId } from './fixtures.ts'

export const REDIS_URL = 'redis://127.0.0.1:6379'
const SESSION_TTL_SECONDS = 3_600
// INFO itself is counted by the server: the bench's own readings are taken off.
const OWN_COMMANDS = new Set(['info'])

export interface BenchSessions {
  readonly prefix: string
  readonly tag: string
  /** Session id of the session bound to school i. */
  idOf (index: number): string
  counters (): Promise<Map<string, number>>
  close (): Promise<void>
}

/** The wrk script builds the same ids: `<tag>-<school index>`. */
export function sessionId (tag: string, index: number): string {
  return `${tag}-${index}`
}

/** One session per school, `{ "user": "user-<i>", "roles": ["teacher"], "tenant": "school-<i>" }`, at `<prefix><id>`: a teacher may read the register (scenario d). */
export async function createBenchSessions (schools: number): Promise<BenchSessions> {
  const tag = `b${process.pid.toString(36)}${Date.now().toString(36)}`
  const prefix = `ficus-bench:${tag}:session:`
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 2_000, lazyConnect: true })
  await redis.connect()
  const pipeline = redis.pipeline()
  for (let i = 0; i < schools; i++) {
    pipeline.set(prefix + sessionId(tag, i), JSON.stringify({ user: `user-${i}`, roles: ['teacher'], tenant: schoolId(i) }), 'EX', SESSION_TTL_SECONDS)
  }
  await pipeline.exec()
  return {
    prefix,
    tag,
    idOf: (index) => sessionId(tag, index),
    async counters () {
      const text = await redis.info('commandstats')
      const calls = new Map<string, number>()
      for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1] ?? '', Number(match[2]))
      return calls
    },
    async close () {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `ficus-bench:${tag}:*`, 'COUNT', 1_000)
        if (keys.length > 0) await redis.del(...keys)
        cursor = next
      } while (cursor !== '0')
      redis.disconnect()
    }
  }
}

/** Commands the server ran between two readings, without the bench's own housekeeping. */
export function commandsBetween (before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): { total: number, byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {}
  let total = 0
  for (const [name, calls] of after) {
    if (OWN_COMMANDS.has(name)) continue
    const delta = calls - (before.get(name) ?? 0)
    if (delta <= 0) continue
    byCommand[name] = delta
    total += delta
  }
  return { total, byCommand }
}
