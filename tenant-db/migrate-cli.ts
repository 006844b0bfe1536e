// `ficus migrate`: applies migrations/control to the control database (DATABASE_URL), then
// migrations/tenant to every school's database in the registry, a few at a time, and prints
// what happened to each. Exit code 0: all current; 1: some database failed; 2: bad usage.
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { PgTenantRegistry } from '../tenants/pg-registry.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { parseTenantDbConfig } from './config.ts'
import type { TenantDbConfig } from './config.ts'
import { TenantDbErrors } from './errors.ts'
import { loadMigrations, messageOf, migrateAll } from './migrate.ts'
import type { Migration, MigrationJob, SchoolMigrationResult } from './migrate.ts'
import { openPgMigrationTarget } from './pg-transaction.ts'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
const APPLICATION_NAME = 'ficus-migrate'
const PROGRESS_INTERVAL_MS = 100

const USAGE = `Usage: ficus migrate [options]

Applies migrations/control to DATABASE_URL, then migrations/tenant to every school's database.

  --dry-run            list what would be applied, change nothing
  --tenant <id>        only this school (repeat, or comma-separated)
  --cohort <name>      only schools of this cohort (repeat, or comma-separated)
  --concurrency <n>    schools migrated at a time (default TENANT_MIGRATE_CONCURRENCY, 4)
  --control-only       only the control database
  --tenants-only       only the schools' databases
  --help               this text
`

export interface MigrateCliOutput {
  write (chunk: string): unknown
  readonly isTTY?: boolean
}

export interface MigrateCliOptions {
  readonly stdout?: MigrateCliOutput
  readonly stderr?: MigrateCliOutput
  /** The schools to migrate, instead of the `tenants` table of DATABASE_URL. */
  readonly registry?: TenantRegistry
}

interface CliArgs {
  readonly dryRun: boolean
  readonly tenants: readonly string[]
  readonly cohorts: readonly string[]
  readonly concurrency: number | undefined
  readonly controlOnly: boolean
  readonly tenantsOnly: boolean
  readonly help: boolean
}

export async function runMigrateCli (argv: string[], env: Record<string, string | undefined>, options: MigrateCliOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout
  const stderr = options.stderr ?? process.stderr
  const problems: string[] = []
  const args = parseCliArgs(argv, problems)
  if (args.help) {
    stdout.write(USAGE)
    return EXIT_OK
  }
  const config = parseTenantDbConfig(env, problems)
  if (options.registry === undefined && config.databaseUrl === undefined) {
    problems.push('DATABASE_URL is required to find the schools\' databases, e.g. DATABASE_URL=postgres://ficus@127.0.0.1:5432/ficus_control ' +
      '(without it, each school\'s embedded database is migrated when ficus opens it)')
  }
  if (args.controlOnly && args.tenantsOnly) problems.push('--control-only and --tenants-only exclude each other')
  if (problems.length > 0) {
    for (const problem of problems) stderr.write(`ficus migrate: ${problem}\n`)
    stderr.write('Try ficus migrate --help\n')
    return EXIT_USAGE
  }

  let controlMigrations: Migration[]
  let tenantMigrations: Migration[]
  try {
    controlMigrations = await loadMigrations(join(config.migrationsDir, 'control'))
    tenantMigrations = await loadMigrations(join(config.migrationsDir, 'tenant'))
  } catch (error) {
    stderr.write(`ficus migrate: cannot read migrations: ${messageOf(error)}\n`)
    return EXIT_USAGE
  }
  const concurrency = args.concurrency ?? config.migrateConcurrency
  const dryRun = args.dryRun

  if (config.databaseUrl !== undefined && !args.tenantsOnly) {
    const controlUrl = config.databaseUrl
    const [control] = await migrateAll([{
      id: 'control',
      open: () => openPgMigrationTarget(controlUrl, { connectTimeoutMs: config.connectTimeoutMs, applicationName: APPLICATION_NAME, label: 'control' })
    }], controlMigrations, { concurrency: 1, dryRun })
    if (control !== undefined) {
      stdout.write(`control database\n${resultLine(control, 'control'.length)}\n`)
      if (control.status === 'failed') {
        stderr.write('ficus migrate: the control database failed; the schools were not migrated\n')
        return EXIT_FAILED
      }
    }
  }
  if (args.controlOnly) return EXIT_OK

  const ownRegistry = options.registry === undefined
  const registry = options.registry ?? new PgTenantRegistry({
    databaseUrl: config.databaseUrl as string,
    databaseUrlTemplate: config.databaseUrlTemplate,
    listen: false,
    connectTimeoutMs: config.connectTimeoutMs
  })
  let tenants: Tenant[]
  try {
    if (ownRegistry) await registry.start()
    tenants = [...registry.all()]
  } catch (error) {
    stderr.write(`ficus migrate: cannot read the schools: ${messageOf(error)}\n`)
    return EXIT_FAILED
  } finally {
    if (ownRegistry) await registry.close()
  }

  const unknown = args.tenants.filter((id) => !tenants.some((tenant) => tenant.id === id))
  if (unknown.length > 0) {
    stderr.write(`ficus migrate: --tenant names schools that are not registered: ${unknown.join(', ')}\n`)
    return EXIT_USAGE
  }
  const selected = tenants.filter((tenant) =>
    (args.tenants.length === 0 || args.tenants.includes(tenant.id)) &&
    (args.cohorts.length === 0 || tenant.cohorts.some((cohort) => args.cohorts.includes(cohort))))

  const progress = new Progress(stdout, selected.length)
  const results = await migrateAll(selected.map((tenant) => jobFor(tenant, config)), tenantMigrations, {
    concurrency,
    dryRun,
    onResult: (result, finished) => progress.update(result, finished)
  })
  progress.done()

  stdout.write(`${selected.length} school database${selected.length === 1 ? '' : 's'}${dryRun ? ' (dry run: nothing changed)' : ''}\n`)
  const width = Math.max(0, ...results.map((result) => result.id.length))
  for (const result of results) stdout.write(resultLine(result, width) + '\n')
  const count = (status: string) => results.filter((result) => result.status === status).length
  const failed = results.filter((result) => result.status === 'failed').map((result) => result.id)
  stdout.write(`summary: ${count('applied')} applied, ${count('current')} already current, ` +
    `${dryRun ? `${count('pending')} with pending migrations, ` : ''}${failed.length} failed\n`)
  if (failed.length > 0) {
    stderr.write(`ficus migrate: ${failed.length} school database${failed.length === 1 ? '' : 's'} failed: ${failed.join(', ')}\n`)
    return EXIT_FAILED
  }
  return EXIT_OK
}

function jobFor (tenant: Tenant, config: TenantDbConfig): MigrationJob {
  const url = tenant.databaseUrl
  return {
    id: tenant.id,
    open: async () => {
      if (url === undefined) throw TenantDbErrors.FICUS_ERR_TENANT_DB_UNCONFIGURED(tenant.id)
      return openPgMigrationTarget(url, { connectTimeoutMs: config.connectTimeoutMs, applicationName: APPLICATION_NAME, label: tenant.id })
    }
  }
}

function resultLine (result: SchoolMigrationResult, width: number): string {
  const id = result.id.padEnd(width)
  switch (result.status) {
    case 'applied': return `  ${id}  applied ${result.applied.join(', ')}`
    case 'current': return `  ${id}  already current`
    case 'pending': return `  ${id}  would apply ${result.pending.join(', ')}`
    case 'failed': {
      const at = result.error?.migration === undefined ? '' : ` at ${result.error.migration}`
      const before = result.applied.length > 0 ? ` (applied ${result.applied.join(', ')} first)` : ''
      return `  ${id}  FAILED${at}: ${result.error?.message ?? 'unknown error'}${before}`
    }
  }
}

// One line rewritten in place, only on a terminal: piped output stays a clean report.
class Progress {
  readonly #out: MigrateCliOutput
  readonly #total: number
  readonly #counts = { applied: 0, current: 0, pending: 0, failed: 0 }
  #lastWrite = 0
  #shown = false

  constructor (out: MigrateCliOutput, total: number) {
    this.#out = out
    this.#total = total
  }

  update (result: SchoolMigrationResult, finished: number): void {
    this.#counts[result.status]++
    if (this.#out.isTTY !== true) return
    const now = Date.now()
    if (finished < this.#total && now - this.#lastWrite < PROGRESS_INTERVAL_MS) return
    this.#lastWrite = now
    const c = this.#counts
    this.#out.write(`\r\x1b[2K${finished}/${this.#total} schools: ${c.applied} applied, ${c.current} current, ${c.pending} pending, ${c.failed} failed`)
    this.#shown = true
  }

  done (): void {
    if (this.#shown) this.#out.write('\r\x1b[2K')
  }
}

function parseCliArgs (argv: string[], problems: string[]): CliArgs {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'dry-run': { type: 'boolean', default: false },
        tenant: { type: 'string', multiple: true, default: [] },
        cohort: { type: 'string', multiple: true, default: [] },
        concurrency: { type: 'string' },
        'control-only': { type: 'boolean', default: false },
        'tenants-only': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }))
  } catch (error) {
    problems.push(messageOf(error))
    return { dryRun: false, tenants: [], cohorts: [], concurrency: undefined, controlOnly: false, tenantsOnly: false, help: false }
  }
  const list = (items: string[]) => items.flatMap((item) => item.split(',')).map((item) => item.trim()).filter((item) => item !== '')
  let concurrency: number | undefined
  if (values.concurrency !== undefined) {
    concurrency = Number(values.concurrency)
    if (!/^\d+$/.test(values.concurrency) || concurrency < 1) {
      problems.push('--concurrency must be a positive integer, e.g. --concurrency 8')
      concurrency = undefined
    }
  }
  return {
    dryRun: values['dry-run'],
    tenants: list(values.tenant),
    cohorts: list(values.cohort),
    concurrency,
    controlOnly: values['control-only'],
    tenantsOnly: values['tenants-only'],
    help: values.help
  }
}
