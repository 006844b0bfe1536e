// Shadow traffic: the user has had legacy's answer; afterwards the same GET/HEAD runs through the
// new handler inside this process and the two answers are compared. The copy of legacy's body is
// taken as it streams to the client (bounded), the work is capped and dropped, never queued,
// and the results are kept per route and school with the last mismatches and their diffs.
import { Transform, type TransformCallback } from 'node:stream'
import { promisify } from 'node:util'
import { brotliDecompress, gunzip, inflate } from 'node:zlib'
import type { ShadowDropReason, ShadowOutcome } from '../core/safety-events.ts'
import { pathOf } from '../core/url.ts'
import { compareResponses, type CompiledRules, type ComparedResponse } from './compare.ts'

/** Copies what passes through, up to `limit` bytes; past that it only passes bytes on. */
export class BoundedTee extends Transform {
  readonly #limit: number
  #chunks: Buffer[] | undefined = []
  #length = 0
  #complete = false

  constructor (limit: number) {
    super()
    this.#limit = limit
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#chunks !== undefined) {
      this.#length += chunk.length
      if (this.#length > this.#limit) this.#chunks = undefined
      else this.#chunks.push(chunk)
    }
    callback(null, chunk)
  }

  override _flush (callback: TransformCallback): void {
    this.#complete = true
    callback()
  }

  get overflowed (): boolean {
    return this.#chunks === undefined
  }

  /** Whether the whole body went through (the client may have gone half way). */
  get complete (): boolean {
    return this.#complete
  }

  body (): Buffer {
    return this.#chunks === undefined ? Buffer.alloc(0) : Buffer.concat(this.#chunks, this.#length)
  }
}

export interface ShadowMismatch {
  readonly at: string
  readonly tenant: string
  readonly requestId: string
  readonly method: string
  /** The path only: a query string may carry tokens. */
  readonly path: string
  readonly outcome: 'mismatch' | 'error'
  readonly legacyStatus: number
  readonly newStatus: number | undefined
  readonly diff: string
}

export interface ShadowCounts {
  match: number
  mismatch: number
  error: number
}

/** One route's shadow results: counts per school (bounded) and the newest mismatches. */
export class ShadowRecord {
  readonly route: string
  readonly #bySchool = new Map<string, ShadowCounts>()
  readonly #maxSchools: number
  readonly #kept: number
  readonly #mismatches: ShadowMismatch[] = []
  readonly totals: ShadowCounts = { match: 0, mismatch: 0, error: 0 }
  readonly dropped: Record<ShadowDropReason, number> = { busy: 0, too_large: 0, incomplete: 0, draining: 0 }

  constructor (route: string, kept: number, maxSchools: number) {
    this.route = route
    this.#kept = kept
    this.#maxSchools = maxSchools
  }

  add (tenant: string, outcome: ShadowOutcome, mismatch?: ShadowMismatch): void {
    this.totals[outcome]++
    let counts = this.#bySchool.get(tenant)
    if (counts === undefined) {
      if (this.#bySchool.size >= this.#maxSchools) {
        const oldest = this.#bySchool.keys().next().value
        if (oldest !== undefined) this.#bySchool.delete(oldest)
      }
      counts = { match: 0, mismatch: 0, error: 0 }
      this.#bySchool.set(tenant, counts)
    }
    counts[outcome]++
    if (mismatch !== undefined) {
      this.#mismatches.unshift(mismatch)
      if (this.#mismatches.length > this.#kept) this.#mismatches.length = this.#kept
    }
  }

  drop (reason: ShadowDropReason): void {
    this.dropped[reason]++
  }

  summary (): { route: string, totals: ShadowCounts, dropped: Record<ShadowDropReason, number>, schools: Record<string, ShadowCounts> } {
    return { route: this.route, totals: { ...this.totals }, dropped: { ...this.dropped }, schools: Object.fromEntries([...this.#bySchool].map(([id, counts]) => [id, { ...counts }])) }
  }

  /** One school's counts (a copy), without copying every school's as summary() does. */
  countsOf (tenant: string): ShadowCounts | undefined {
    const counts = this.#bySchool.get(tenant)
    return counts === undefined ? undefined : { ...counts }
  }

  /** One school's live counts, read-only and not copied: for a reader that copies the numbers out at once. */
  liveCountsOf (tenant: string): Readonly<ShadowCounts> | undefined {
    return this.#bySchool.get(tenant)
  }

  mismatches (): readonly ShadowMismatch[] {
    return [...this.#mismatches]
  }
}

export interface ShadowJob {
  readonly record: ShadowRecord
  readonly rules: CompiledRules
  readonly tenant: string
  readonly cohort: string | undefined
  readonly requestId: string
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly legacyStatus: number
  readonly legacyContentType: string | undefined
  readonly legacyEncoding: string | undefined
  readonly legacyBody: Buffer
}

/** What the runner needs to replay a request on the new side (request-path/shadow.ts runs it through the path). */
export type ShadowReplay = (job: ShadowJob) => Promise<ComparedResponse>

export interface ShadowResultSink {
  onShadowResult (route: string, cohort: string | undefined, outcome: ShadowOutcome): void
  onShadowDropped (route: string, reason: ShadowDropReason): void
}

const decompressors: Readonly<Record<string, (body: Buffer) => Promise<Buffer>>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress)
}

export class ShadowRunner {
  readonly #concurrency: number
  readonly #replay: ShadowReplay
  readonly #sink: ShadowResultSink
  readonly #onFailure: (error: unknown, job: ShadowJob) => void
  #inFlight = 0
  #stopped = false

  constructor (options: { concurrency: number, replay: ShadowReplay, sink: ShadowResultSink, onFailure: (error: unknown, job: ShadowJob) => void }) {
    this.#concurrency = options.concurrency
    this.#replay = options.replay
    this.#sink = options.sink
    this.#onFailure = options.onFailure
  }

  get inFlight (): number {
    return this.#inFlight
  }

  hasRoom (): boolean {
    return !this.#stopped && this.#inFlight < this.#concurrency
  }

  /** No new shadow work from now on (shutdown). */
  stop (): void {
    this.#stopped = true
  }

  drop (record: ShadowRecord, reason: ShadowDropReason): void {
    record.drop(reason)
    this.#sink.onShadowDropped(record.route, reason)
  }

  /** Starts the job now or drops it; never waits for room. */
  submit (job: ShadowJob): void {
    if (this.#stopped) return this.drop(job.record, 'draining')
    if (this.#inFlight >= this.#concurrency) return this.drop(job.record, 'busy')
    this.#inFlight++
    this.#run(job).catch((error: unknown) => this.#onFailure(error, job)).finally(() => { this.#inFlight-- })
  }

  async #run (job: ShadowJob): Promise<void> {
    let legacyBody = job.legacyBody
    const decompress = job.legacyEncoding === undefined ? undefined : decompressors[job.legacyEncoding.toLowerCase()]
    if (decompress !== undefined) legacyBody = await decompress(legacyBody)
    const legacy: ComparedResponse = { status: job.legacyStatus, contentType: job.legacyContentType, body: legacyBody }
    let candidate: ComparedResponse
    try {
      candidate = await this.#replay(job)
    } catch (error) {
      this.#finish(job, 'error', undefined, `the new handler could not be run: ${(error as Error).message}`)
      throw error
    }
    if (candidate.status >= 500 && legacy.status < 500) {
      return this.#finish(job, 'error', candidate.status, `the new handler failed with ${candidate.status}: ${candidate.body.toString('utf8', 0, 300)}`)
    }
    const comparison = compareResponses(legacy, candidate, job.rules)
    if (comparison.match) this.#finish(job, 'match', candidate.status, '')
    else this.#finish(job, 'mismatch', candidate.status, comparison.diff)
  }

  #finish (job: ShadowJob, outcome: ShadowOutcome, newStatus: number | undefined, diff: string): void {
    job.record.add(job.tenant, outcome, outcome === 'match'
      ? undefined
      : {
          at: new Date().toISOString(),
          tenant: job.tenant,
          requestId: job.requestId,
          method: job.method,
          path: pathOf(job.url),
          outcome,
          legacyStatus: job.legacyStatus,
          newStatus,
          diff
        })
    this.#sink.onShadowResult(job.record.route, job.cohort, outcome)
  }
}
