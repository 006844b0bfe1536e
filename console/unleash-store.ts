// Flags changed through Unleash's Admin API, as the Unleash UI changes them: strategies are
// added, updated and deleted one by one in the environment ficus reads, and the environment is
// switched on or off, so Unleash's own UI shows (and can edit) exactly what the console did.
import { NO_FLAG, versionOf, type FlagState, type FlagStore, type Strategy, type StoredFlag } from './flag-store.ts'

const REQUEST_TIMEOUT_MS = 10_000
/** Context fields the console's constraints use; Unleash refuses constraints on unknown fields. */
const CONTEXT_FIELDS = [
  { name: 'tenantId', description: 'The school (ficus): also the stickiness of rollouts', stickiness: true },
  { name: 'cohort', description: 'One of the school\'s cohorts (ficus)', stickiness: false }
]

/** Unleash's default resource limit (UNLEASH_CONSTRAINT_VALUES_LIMIT on the server). */
const CONSTRAINT_VALUES_LIMIT = 250

export class UnleashAdminFlagStore implements FlagStore {
  readonly description: string
  readonly maxConstraintValues = CONSTRAINT_VALUES_LIMIT
  readonly #url: string
  readonly #token: string
  readonly #project: string
  readonly #environment: string
  #contextReady = false

  constructor (options: { url: string, token: string, project: string, environment: string }) {
    this.#url = options.url
    this.#token = options.token
    this.#project = options.project
    this.#environment = options.environment
    this.description = `Unleash (project ${options.project}, environment ${options.environment})`
  }

  async read (flag: string): Promise<StoredFlag> {
    const answer = await this.#request('GET', this.#featurePath(flag), undefined, [404])
    if (answer === undefined) return { state: NO_FLAG, exists: false, version: versionOf(NO_FLAG) }
    const environment = (answer as { environments?: Array<{ name: string, enabled: boolean, strategies?: Strategy[] }> }).environments?.find((candidate) => candidate.name === this.#environment)
    const state: FlagState = { enabled: environment?.enabled === true, strategies: environment?.strategies ?? [] }
    return { state, exists: true, version: versionOf(state) }
  }

  async write (flag: string, next: FlagState, expectedVersion: string, kind: 'release' | 'kill-switch'): Promise<boolean> {
    await this.#ensureContextFields()
    const current = await this.read(flag)
    if (current.version !== expectedVersion) return false
    if (!current.exists) await this.#request('POST', `/api/admin/projects/${enc(this.#project)}/features`, { name: flag, type: kind, description: 'Created by the ficus console' })
    const environment = `${this.#featurePath(flag)}/environments/${enc(this.#environment)}`
    // Off first when it ends off, on last when it ends on: no moment serves strategies half-changed
    // to more schools than either end state does.
    if (!next.enabled && current.state.enabled) await this.#request('POST', `${environment}/off`)
    const kept = new Set<string>()
    for (const strategy of next.strategies) {
      const body = strategyBody(strategy)
      const existing = strategy.id === undefined ? undefined : current.state.strategies.find((candidate) => candidate.id === strategy.id)
      if (existing === undefined) await this.#request('POST', `${environment}/strategies`, body)
      else {
        kept.add(existing.id as string)
        if (versionOf({ enabled: true, strategies: [existing] }) !== versionOf({ enabled: true, strategies: [strategy] })) await this.#request('PUT', `${environment}/strategies/${enc(existing.id as string)}`, body)
      }
    }
    for (const strategy of current.state.strategies) {
      if (strategy.id !== undefined && !kept.has(strategy.id)) await this.#request('DELETE', `${environment}/strategies/${enc(strategy.id)}`)
    }
    if (next.enabled && !current.state.enabled) await this.#request('POST', `${environment}/on`)
    return true
  }

  #featurePath (flag: string): string {
    return `/api/admin/projects/${enc(this.#project)}/features/${enc(flag)}`
  }

  async #ensureContextFields (): Promise<void> {
    if (this.#contextReady) return
    for (const field of CONTEXT_FIELDS) await this.#request('POST', '/api/admin/context', field, [409])
    this.#contextReady = true
  }

  async #request (method: string, path: string, body?: unknown, tolerated: readonly number[] = []): Promise<unknown> {
    const headers: Record<string, string> = { authorization: this.#token, accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    try {
      response = await fetch(`${this.#url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    } catch (error) {
      throw new Error(`Unleash did not answer ${method} ${path}: ${(error as Error).message}`)
    }
    const text = await response.text()
    if (tolerated.includes(response.status)) return undefined
    if (!response.ok) throw new Error(`Unleash answered ${method} ${path} with ${response.status}: ${text.slice(0, 300)}`)
    return text === '' ? undefined : JSON.parse(text)
  }
}

function strategyBody (strategy: Strategy): object {
  const { id: _id, ...rest } = strategy
  return { ...rest, parameters: rest.parameters ?? {}, constraints: rest.constraints ?? [], segments: rest.segments ?? [] }
}

function enc (part: string): string {
  return encodeURIComponent(part)
}
