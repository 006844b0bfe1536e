// The embedded tenant registry: a JSON file listing the schools, re-read when it changes.
//   { "tenants": [ { "id": "school-a", "name": "School A", "status": "active", "cohorts": ["pilot"] } ] }
import { WatchedJsonFile } from '../files/watched-json-file.ts'
import type { TenantRegistry } from './registry.ts'
import { LEGACY_SHARD_PATTERN, TENANT_ID_PATTERN, TENANT_STATUSES, type Tenant, type TenantStatus } from './tenant.ts'

export interface FileTenantRegistryOptions {
  readonly path: string
  readonly onReload?: (count: number) => void
  readonly onInvalid?: (error: Error) => void
  readonly pollIntervalMs?: number
}

export class FileTenantRegistry implements TenantRegistry {
  readonly source: string
  readonly #file: WatchedJsonFile<Map<string, Tenant>>
  #tenants = new Map<string, Tenant>()
  #version = 0

  constructor (options: FileTenantRegistryOptions) {
    this.source = `file ${options.path}`
    this.#file = new WatchedJsonFile({
      path: options.path,
      parse: parseTenantList,
      pollIntervalMs: options.pollIntervalMs,
      onChange: (tenants) => {
        this.#tenants = tenants
        this.#version++
        options.onReload?.(tenants.size)
      },
      onInvalid: (error) => options.onInvalid?.(error)
    })
  }

  async start (): Promise<void> {
    this.#tenants = this.#file.load()
    this.#version++
    this.#file.watch()
  }

  reload (): void {
    this.#file.reload()
  }

  get (id: string): Tenant | undefined {
    return this.#tenants.get(id)
  }

  all (): Iterable<Tenant> {
    return this.#tenants.values()
  }

  get size (): number {
    return this.#tenants.size
  }

  get version (): number {
    return this.#version
  }

  async close (): Promise<void> {
    this.#file.close()
  }
}

/** Validates the whole list and reports every problem at once, each with its position. */
export function parseTenantList (json: unknown): Map<string, Tenant> {
  const list = (json as { tenants?: unknown } | null)?.tenants
  if (!Array.isArray(list)) throw new Error('expected an object with a "tenants" array')
  const problems: string[] = []
  const tenants = new Map<string, Tenant>()
  list.forEach((entry: unknown, index) => {
    const where = `tenants[${index}]`
    const tenant = parseTenant(entry, where, problems)
    if (tenant === undefined) return
    if (tenants.has(tenant.id)) problems.push(`${where}.id "${tenant.id}" is listed twice`)
    tenants.set(tenant.id, tenant)
  })
  if (problems.length > 0) throw new Error(problems.join('; '))
  return tenants
}

function parseTenant (entry: unknown, where: string, problems: string[]): Tenant | undefined {
  if (typeof entry !== 'object' || entry === null) {
    problems.push(`${where} must be an object`)
    return undefined
  }
  const { id, name, status = 'active', cohorts = [], databaseUrl, legacy } = entry as Record<string, unknown>
  const before = problems.length
  if (typeof id !== 'string' || !TENANT_ID_PATTERN.test(id)) {
    problems.push(`${where}.id must be a lower-case DNS label, e.g. "school-a"`)
  }
  if (typeof name !== 'string' || name === '') problems.push(`${where}.name must be a non-empty string`)
  if (!TENANT_STATUSES.includes(status as TenantStatus)) {
    problems.push(`${where}.status must be one of ${TENANT_STATUSES.join(', ')}`)
  }
  if (!Array.isArray(cohorts) || !cohorts.every((c) => typeof c === 'string' && c !== '')) {
    problems.push(`${where}.cohorts must be an array of names, e.g. ["pilot"]`)
  }
  if (databaseUrl !== undefined && typeof databaseUrl !== 'string') {
    problems.push(`${where}.databaseUrl must be a connection string`)
  }
  if (legacy !== undefined && (typeof legacy !== 'string' || !LEGACY_SHARD_PATTERN.test(legacy))) {
    problems.push(`${where}.legacy must name a legacy shard of LEGACY_UPSTREAMS, e.g. "north"`)
  }
  if (problems.length > before) return undefined
  return Object.freeze({
    id: id as string,
    name: name as string,
    status: status as TenantStatus,
    cohorts: Object.freeze([...(cohorts as string[])]),
    ...(databaseUrl === undefined ? {} : { databaseUrl: databaseUrl as string }),
    ...(legacy === undefined ? {} : { legacy: legacy as string })
  })
}
