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
  migrated: '/bench/migrated'
})

export const BENCH_FLAGS = Object.freeze({
  /** KILL_SWITCH_FLAG of the bench: defined and off, so every decision evaluates it first. */
  killSwitch: 'ficus-kill-switch',
  small: 'bench-legacy-small',
  large: 'bench-legacy-large',
  migrated: 'bench-migrated-json'
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

function tenantsJson (): string {
  const tenants = Array.from({ length: SCHOOLS }, (_, i) => ({
    id: schoolId(i),
    name: `School ${i}`,
    status: 'active',
    cohorts: [`wave-${i % 5}`, `region-${i % 12}`]
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
  const features: object[] = [
    { name: BENCH_FLAGS.killSwitch, type: 'kill-switch', enabled: false, strategies: [{ name: 'default', parameters: {}, constraints: [] }] },
    rollout(BENCH_FLAGS.small, unvisited),
    rollout(BENCH_FLAGS.large, unvisited),
    {
      name: BENCH_FLAGS.migrated,
      enabled: true,
      strategies: [{ name: 'flexibleRollout', parameters: { rollout: '100', stickiness: 'tenantId', groupId: BENCH_FLAGS.migrated }, constraints: [] }]
    }
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

// The same script drives every contender: the Host rotates over the visited schools, requests are
// formatted once in init, and `done` prints the numbers as one JSON line.
function wrkLua (): string {
  return `local requests = {}
local count = 0
local next_request = 0
init = function(args)
  local path = args[1]
  for i = 0, ${VISITED_SCHOOLS - 1} do
    requests[i + 1] = wrk.format("GET", path, { Host = "school-" .. i .. ".${BASE_DOMAIN}" })
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
