// The main thread's side of the page worker: it takes a cheap copy of the evidence this thread
// owns, only what changed since the last page (flag definitions when their version moves, the
// schools when the registry's snapshot moves, shadow counts of the routes whose totals
// moved, the breakers that are not closed, the recent requests per cohort), and lets the worker
// build and render the page. Building the matrix of 1,500 schools x 10 routes and rendering
// any page then never holds up the public port's requests.
import { Worker } from 'node:worker_threads'
import type { Flags } from '../flags/flags.ts'
import { FlagErrors } from '../flags/errors.ts'
import type { RouteGuard } from '../safety/safety-net.ts'
import type { Tenant } from '../tenants/tenant.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import { schoolRow, type EvidenceUpdate, type MatrixSetup, type MatrixView } from './matrix.ts'
import type { PageName, PAGES, WorkerAnswer, WorkerTask } from './page-worker.ts'
import type { RecentRequests } from './recent-requests.ts'
import type { SideChanges, SideChangesQuestion } from './side-changes.ts'

// Copying one route's shadow counts of 1,500 schools costs the main thread 0.1-0.5 ms: while
// shadow traffic keeps moving them, one read copies one route's (the longest uncopied), and a
// route's at most every SHADOW_COPY_EVERY_MS, so the matrix's counts trail by a few reads.
const SHADOW_COPY_EVERY_MS = 2_000
const SHADOW_COPIES_PER_READ = 1
const WORKER_FILE = new URL(import.meta.url.endsWith('.ts') ? './page-worker.ts' : './page-worker.js', import.meta.url)

export interface ConsolePagesParts {
  readonly setup: MatrixSetup
  /** In the order of setup.routes; undefined for a route without a safety net. */
  readonly guards: ReadonlyArray<RouteGuard | undefined>
  readonly flags: Pick<Flags, 'definitions' | 'definitionsVersion'>
  readonly registry: TenantRegistry
  readonly recent: RecentRequests
}

type Answer = Exclude<WorkerAnswer, { error: string }>

interface Pending {
  resolve (answer: Answer): void
  reject (error: Error): void
}

export class ConsolePages {
  readonly #parts: ConsolePagesParts
  #worker: Worker | undefined
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  // What the worker has: reset when a worker is started.
  #flagsVersion = -1
  #schools: Tenant[] = []
  #schoolsVersion = -1
  #shadowTotals: number[] = []
  #shadowCopiedAt: number[] = []
  #closed = false
  /** Milliseconds the worker last took to decide every side (for the bench). */
  lastDecisionMs: number | undefined

  constructor (parts: ConsolePagesParts) {
    this.#parts = parts
  }

  /**
   * Starts the worker and has it decide every side once, so that the first page does not wait
   * for it. Before the flags are loaded there is nothing to decide: the update refuses, and the
   * first page does it.
   */
  prime (): void {
    this.#send(() => ({ kind: 'matrix', update: this.#update(), view: { user: { user: '', csrf: '' }, freeze: undefined, query: {} } })).catch(() => {})
  }

  /** The page as UTF-8. */
  async matrix (view: MatrixView): Promise<Buffer> {
    return html(await this.#send(() => ({ kind: 'matrix', update: this.#update(), view })))
  }

  /** The page as UTF-8. */
  async page<P extends PageName> (page: P, options: Parameters<typeof PAGES[P]>[0]): Promise<Buffer> {
    return html(await this.#send(() => ({ kind: 'page', page, options })))
  }

  /** The schools a proposed flag state moves, decided in the worker over its copy of the flags. */
  async sideChanges (question: SideChangesQuestion): Promise<SideChanges> {
    const answer = await this.#send(() => ({ kind: 'changes', update: this.#update(), question }))
    if (!('changes' in answer)) throw new Error('console page worker: no side changes in the answer')
    return answer.changes
  }

  close (): void {
    this.#closed = true
    void this.#worker?.terminate()
    this.#worker = undefined
  }

  /** The evidence that changed since the worker last had it. */
  #update (): EvidenceUpdate {
    const { flags, registry, guards, recent, setup } = this.#parts
    const takenAt = Date.now()
    let definitions
    if (flags.definitionsVersion !== this.#flagsVersion) {
      definitions = flags.definitions()
      if (definitions === undefined) throw FlagErrors.FICUS_ERR_FLAGS_NOT_READY()
      this.#flagsVersion = definitions.version
    }
    const schoolsChanged = registry.version !== this.#schoolsVersion
    if (schoolsChanged) {
      this.#schools = [...registry.all()]
      this.#schoolsVersion = registry.version
      this.#shadowTotals = []
    }
    const schools = this.#schools
    const moved: number[] = []
    guards.forEach((guard, r) => {
      if (guard === undefined) return
      const totals = guard.shadow.totals
      const total = totals.match + totals.mismatch + totals.error
      if (this.#shadowTotals[r] === total) return
      if (this.#shadowTotals[r] !== undefined && takenAt - (this.#shadowCopiedAt[r] ?? 0) < SHADOW_COPY_EVERY_MS) return
      moved.push(r)
    })
    // Never copied (a new worker, other schools) first, then the longest uncopied.
    const copied = this.#shadowTotals.length === 0 ? moved : moved.sort((a, b) => (this.#shadowCopiedAt[a] ?? 0) - (this.#shadowCopiedAt[b] ?? 0)).slice(0, SHADOW_COPIES_PER_READ)
    const shadow = copied.map((r) => {
      const record = (guards[r] as RouteGuard).shadow
      const counts = new Uint32Array(schools.length * 3)
      for (let s = 0; s < schools.length; s++) {
        // No copy per school: the numbers go straight into the array sent to the worker.
        const of = record.liveCountsOf((schools[s] as Tenant).id)
        if (of === undefined) continue
        counts[s * 3] = of.match
        counts[s * 3 + 1] = of.mismatch
        counts[s * 3 + 2] = of.error
      }
      this.#shadowTotals[r] = record.totals.match + record.totals.mismatch + record.totals.error
      this.#shadowCopiedAt[r] = takenAt
      return [r, counts] as const
    })
    return {
      takenAt,
      ...(definitions === undefined ? {} : { flags: definitions }),
      ...(schoolsChanged ? { schools: schools.map(schoolRow) } : {}),
      ...(shadow.length === 0 ? {} : { shadow }),
      breakers: guards.map((guard) => guard === undefined ? [] : guard.breaker.notClosed().map((entry) => [entry.key, entry.state] as const)),
      shares: setup.routes.map((route) => recent.shares(route.name))
    }
  }

  /** `build` runs after the worker is started, so that an update is against what that worker has. */
  #send (build: () => WorkerTask): Promise<Answer> {
    if (this.#closed) return Promise.reject(new Error('the console is closed'))
    const worker = this.#worker ?? this.#start()
    let request: WorkerTask
    try {
      request = build()
    } catch (error) {
      return Promise.reject(error)
    }
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      worker.postMessage({ ...request, id }, request.kind === 'page' ? [] : (request.update.shadow ?? []).map(([, counts]) => counts.buffer as ArrayBuffer))
    })
  }

  #start (): Worker {
    this.#flagsVersion = -1
    this.#schools = []
    this.#schoolsVersion = -1
    this.#shadowTotals = []
    this.#shadowCopiedAt = []
    // Without the process's loaders (a test runner's TypeScript hooks would compile every module
    // again, for seconds): Node itself runs the worker's .ts (type stripping) or .js.
    const worker = new Worker(WORKER_FILE, { workerData: this.#parts.setup, execArgv: [] })
    // The HTTP server keeps the process alive while a page waits; the worker alone must not.
    worker.unref()
    worker.on('message', (answer: WorkerAnswer) => {
      const pending = this.#pending.get(answer.id)
      if (pending === undefined) return
      this.#pending.delete(answer.id)
      if ('error' in answer) return pending.reject(new Error(`console page worker: ${answer.error}`))
      if ('decisionMs' in answer && answer.decisionMs !== undefined) this.lastDecisionMs = answer.decisionMs
      pending.resolve(answer)
    })
    const failed = (error: Error): void => {
      if (this.#worker !== worker) return
      this.#worker = undefined
      for (const pending of this.#pending.values()) pending.reject(error)
      this.#pending.clear()
    }
    worker.on('error', failed)
    worker.on('exit', (code) => failed(new Error(`console page worker exited with code ${code}`)))
    this.#worker = worker
    return worker
  }
}

function html (answer: Answer): Buffer {
  if (!('html' in answer)) throw new Error('console page worker: no page in the answer')
  return Buffer.from(answer.html.buffer, answer.html.byteOffset, answer.html.byteLength)
}
