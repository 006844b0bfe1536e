// Everything the bench serves and configures, written afresh into a temporary folder per run:
// the upstream's two bodies, both nginx configs, 1,500 schools, 50 flags and the wrk script.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const SMALL_BYTES = 1_024
export const LARGE_BYTES = 102_400
export const SCHOOLS = 1_500
export const FLAGS = 50
// The load visits these schools in turn; the bench flags are on only for the others.
export const VISITED_SCHOOLS = 1_000
export const BASE_DOMAIN = 'localhost'

export const BENCH_PATHS = Object.freeze({
  small: '/bench/small.json',
  large: '/bench/large.bin',
  migrated: '/bench/migrated',
  /** The real migrated route reading the shared session. */
  session: '/me',
  /** The real attendance register read, on the class every bench school database holds. */
  database: '/attendance/7B?date=2026-11-27',
  /** The same read through db.transaction: three round trips. */
  databaseThreeRoundTrips: '/bench/register-3rt/7B?date=2026-11-27',
  /** A real migrated page whose flag is off for the visited schools: decided, then legacy. */
  legacyPage: '/timetable'
})

/** The legacy's session cookie (SESSION_COOKIE's default). */
export const SESSION_COOKIE = 'session'

export const BENCH_FLAGS = Object.freeze({
  /** KILL_SWITCH_FLAG of the bench: defined and off, so every decision evaluates it first. */
  killSwitch: 'ficus-kill-switch',
  small: 'bench-legacy-small',
  large: 'bench-legacy-large',
  migrated: 'bench-migrated-json',
  /** The real flags of the migrated routes the bench uses, as new-routes/ names them. */
  session: 'me',
  database: 'attendance-register',
  legacyPage: 'timetable-page'
})

export interface Fixtures {
  readonly dir: string
  readonly tenantsFile: string
  readonly flagsFile: string
  readonly wrkScript: string
  nginxUpstreamConf (port: number): string
  nginxProxyConf (port: number, upstreamPort: number): string
}

export function schoolId (index: number): string {
  return `school-${index}`
}

/** Exactly SMALL_BYTES of JSON, the size of a typical legacy API answer. */
export function smallBody (): string {
  const head = '{"school":"school-0","items":['
  const tail = '],"pad":"'
  let items = ''
  for (let i = 0; (head + items + tail).length < SMALL_BYTES - 200; i++) {
    items += `${i === 0 ? '' : ','}{"id":${i},"name":"pupil ${i}"}`
  }
  const open = head + items + tail
  return open + 'x'.repeat(SMALL_BYTES - open.length - 2) + '"}'
}

/** Two cohorts per school, the same in the tenants file and in the control database. */
export function cohortsOf (index: number): string[] {
  return [`wave-${index % 5}`, `region-${index % 12}`]
}

function tenantsJson (): string {
  const tenants = Array.from({ length: SCHOOLS }, (_, i) => ({
    id: schoolId(i),
    name: `School ${i}`,
    status: 'active',
    cohorts: cohortsOf(i)
  }))
  return JSON.stringify({ tenants })
}

// 50 flags shaped like a real rollout: a kill switch, then flags on for a list of schools (by
// tenantId) or for cohorts, rolled out by tenantId stickiness. The bench's legacy-bound flags list
// only schools the load never visits, so every evaluation walks the whole list, once per cohort
// of the school, and answers "legacy".
function flagsJson (): string {
  const unvisited = Array.from({ length: SCHOOLS - VISITED_SCHOOLS }, (_, i) => schoolId(VISITED_SCHOOLS + i))
  const rollout = (name: string, schools: readonly string[]): object => ({
    name,
    enabled: true,
    strategies: [{
      name: 'flexibleRollout',
      parameters: { rollout: '100', stickiness: 'tenantId', groupId: name },
      constraints: [{ contextName: 'tenantId', operator: 'IN', values: schools }]
    }]
  })
  const allSchools = (name: string): object => ({
    name,
    enabled: true,
    strategies: [{ name: 'flexibleRollout', parameters: { rollout: '100', stickiness: 'tenantId', groupId: name }, constraints: [] }]
  })
  const features: object[] = [
    { name: BENCH_FLAGS.killSwitch, type: 'kill-switch', enabled: false, strategies: [{ name: 'default', parameters: {}, constraints: [] }] },
    rollout(BENCH_FLAGS.small, unvisited),
    rollout(BENCH_FLAGS.large, unvisited),
    rollout(BENCH_FLAGS.legacyPage, unvisited),
    allSchools(BENCH_FLAGS.session),
    allSchools(BENCH_FLAGS.database),
    allSchools(BENCH_FLAGS.migrated)
  ]
  for (let f = features.length; f < FLAGS; f++) {
    if (f % 3 === 0) {
      features.push({
        name: `feature-${f}`,
        enabled: true,
        strategies: [{
          name: 'flexibleRollout',
          parameters: { rollout: String(f * 2), stickiness: 'tenantId', groupId: `feature-${f}` },
          constraints: [{ contextName: 'cohort', operator: 'IN', values: [`wave-${f % 5}`, 'pilot'] }]
        }]
      })
    } else {
      features.push(rollout(`feature-${f}`, Array.from({ length: 30 * (f % 10 + 1) }, (_, i) => schoolId((f * 37 + i) % SCHOOLS))))
    }
  }
  return JSON.stringify({ version: 2, features })
}

// The same script drives every contender: `-- <path> [schools] [session tag]`. The Host rotates
// over the first `schools` schools (the visited ones by default); with a session tag each request
// carries the session cookie of its own school (`session=<tag>-<i>`, written to Redis by the
// bench). Requests are formatted once in init, and `done` prints the numbers as one JSON line.
function wrkLua (): string {
  return `local requests = {}
local count = 0
local next_request = 0
init = function(args)
  local path = args[1]
  local schools = tonumber(args[2] or "${VISITED_SCHOOLS}")
  local tag = args[3]
  for i = 0, schools - 1 do
    local headers = { Host = "school-" .. i .. ".${BASE_DOMAIN}" }
    if tag ~= nil and tag ~= "" then headers["Cookie"] = "lang=en; ${SESSION_COOKIE}=" .. tag .. "-" .. i end
    requests[i + 1] = wrk.format("GET", path, headers)
  end
  count = #requests
end
request = function()
  next_request = next_request % count + 1
  return requests[next_request]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_RESULT {"requests":%d,"durationUs":%d,"bytes":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`
}

function render (template: string, values: Readonly<Record<string, string | number>>): string {
  const text = readFileSync(new URL(template, import.meta.url), 'utf8')
  return text.replace(/@([A-Z_]+)@/g, (whole, name: string) => String(values[name] ?? whole))
}

export function writeFixtures (): Fixtures {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-bench-'))
  writeFileSync(join(dir, 'small.json'), smallBody())
  const large = Buffer.alloc(LARGE_BYTES)
  for (let i = 0; i < LARGE_BYTES; i++) large[i] = 0x41 + (i * 7 % 26)
  writeFileSync(join(dir, 'large.bin'), large)
  const tenantsFile = join(dir, 'tenants.json')
  writeFileSync(tenantsFile, tenantsJson())
  const flagsFile = join(dir, 'flags.json')
  writeFileSync(flagsFile, flagsJson())
  const wrkScript = join(dir, 'bench.lua')
  writeFileSync(wrkScript, wrkLua())

  return {
    dir,
    tenantsFile,
    flagsFile,
    wrkScript,
    nginxUpstreamConf (port) {
      const path = join(dir, 'nginx-upstream.conf')
      writeFileSync(path, render('../upstream/nginx-upstream.conf', { DIR: dir, PORT: port, LARGE_PATH: BENCH_PATHS.large }))
      return path
    },
    nginxProxyConf (port, upstreamPort) {
      const path = join(dir, 'nginx-proxy.conf')
      writeFileSync(path, render('../baselines/nginx-proxy.conf', { DIR: dir, PORT: port, UPSTREAM_PORT: upstreamPort }))
      return path
    }
  }
}
