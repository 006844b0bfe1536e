// The flag decisions alone, in-process: what a legacy-bound GET costs in decideBackend with the
// bench's 1,500 schools x 50 flags, measured in CPU time so that other work on the machine barely
// moves it. A legacy-bound GET is decided twice: its route, then (by the safety net) whether to
// shadow it, each time with the kill switch first.
//   node bench/flag-cost.ts <tenants.json> <flags.json>   (run.ts passes its fixtures)
import { decideBackend } from '../flags/decide-backend.ts'
import { Flags } from '../flags/flags.ts'
import { SAFETY_DEFAULTS } from '../safety/config.ts'
import { FileTenantRegistry } from '../tenants/file-registry.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { BENCH_FLAGS, VISITED_SCHOOLS, schoolId } from './lib/fixtures.ts'

const WARMUP_DECISIONS = 200_000
const MEASURED_DECISIONS = 1_000_000
const SILENT = { info () {}, warn () {}, error () {} }

export interface FlagCost {
  /** Legacy-bound requests decided (route, then shadow, each after the kill switch). */
  readonly decisions: number
  /** CPU time of all the decisions of one request. */
  readonly cpuUsPerDecision: number
}

export async function measureFlagCost (tenantsFile: string, flagsFile: string): Promise<FlagCost> {
  const registry = new FileTenantRegistry({ path: tenantsFile })
  await registry.start()
  const flags = await Flags.fromFile(flagsFile, SILENT)
  const tenants: Tenant[] = []
  for (let i = 0; i < VISITED_SCHOOLS; i++) {
    const tenant = registry.get(schoolId(i))
    if (tenant !== undefined) tenants.push(tenant)
  }
  const route = { flag: BENCH_FLAGS.small }
  const shadowRoute = { flag: BENCH_FLAGS.small + SAFETY_DEFAULTS.SHADOW_FLAG_SUFFIX }
  let legacy = 0
  const run = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const tenant = tenants[i % tenants.length] as Tenant
      const context = { tenantId: tenant.id, cohorts: tenant.cohorts, route: 'bench.legacy-small', remoteAddress: '127.0.0.1' }
      const backend = decideBackend(flags, route, context, BENCH_FLAGS.killSwitch)
      if (backend === 'legacy' && decideBackend(flags, shadowRoute, context, BENCH_FLAGS.killSwitch) === 'legacy') legacy++
    }
  }
  run(WARMUP_DECISIONS)
  const before = process.cpuUsage()
  run(MEASURED_DECISIONS)
  const used = process.cpuUsage(before)
  await flags.close()
  await registry.close()
  if (legacy !== WARMUP_DECISIONS + MEASURED_DECISIONS) throw new Error('a bench school was sent to the new handler: the flags fixture is wrong')
  return { decisions: MEASURED_DECISIONS, cpuUsPerDecision: (used.user + used.system) / MEASURED_DECISIONS }
}

if (import.meta.main) {
  const [tenantsFile, flagsFile] = process.argv.slice(2)
  if (tenantsFile === undefined || flagsFile === undefined) throw new Error('usage: node bench/flag-cost.ts <tenants.json> <flags.json>')
  const cost = await measureFlagCost(tenantsFile, flagsFile)
  process.stdout.write(JSON.stringify(cost) + '\n')
}
