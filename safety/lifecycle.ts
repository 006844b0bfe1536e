// The two ends of a rolling restart. Start: pre-warm (connections to legacy, the busiest
// schools' databases) before /readyz says ready. Stop: drain (the load balancer sees /readyz
// 503 while ficus keeps serving with `Connection: close`), then close the listener and let
// every request in flight finish, streams included, up to a deadline.
import type { Server } from 'node:http'

export interface PrewarmStep {
  readonly name: string
  /** Resolves with what happened, in words (`ok` when it says nothing); rejects when it failed. */
  readonly run: () => Promise<string | void>
}

export interface PrewarmLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

/**
 * Steps run once at start, together, bounded by a deadline. Best effort: a step that fails or
 * is late is logged and readiness goes ahead, since holding every replica unready because
 * legacy or one database is slow would turn a partial outage into a full one.
 */
export class Prewarm {
  readonly #steps: PrewarmStep[] = []
  #done = false
  #results: Record<string, string> = {}

  add (step: PrewarmStep): void {
    this.#steps.push(step)
  }

  get done (): boolean {
    return this.#done
  }

  get results (): Readonly<Record<string, string>> {
    return this.#results
  }

  async run (timeoutMs: number, logger: PrewarmLogger): Promise<void> {
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), timeoutMs) })
    await Promise.all(this.#steps.map(async (step) => {
      let failed = false
      const outcome = await Promise.race([step.run().then((said) => said ?? 'ok', (error: Error) => { failed = true; return `failed: ${error.message}` }), deadline])
      this.#results[step.name] = outcome === 'late' ? `not finished within ${timeoutMs} ms` : outcome
      if (failed || outcome === 'late') logger.warn({ step: step.name, outcome: this.#results[step.name] }, 'pre-warm step incomplete; going ahead')
    }))
    clearTimeout(timer)
    this.#done = true
    if (this.#steps.length > 0) logger.info({ steps: this.#results, ms: Math.round(performance.now() - started) }, 'pre-warm done')
  }
}

/**
 * What the pre-warm answers say about legacy, in words that match what happened: legacy answered
 * (with whatever status: a 404 for PREWARM_PATH still means legacy is there), or ficus itself
 * answered because it could not reach legacy or legacy was too slow (then the step fails).
 */
export function legacyPrewarmOutcome (answers: ReadonlyArray<{ status: number, body: string }>, path: string): string {
  const statuses = new Map<string, number>()
  for (const answer of answers) {
    const code = ficusErrorCode(answer.body)
    if (code !== undefined) throw new Error(`legacy not reached: ${code === 'FICUS_ERR_LEGACY_TIMEOUT' ? 'no answer in time' : 'could not connect or no valid answer'} (${code}, ficus answered ${answer.status})`)
    const key = String(answer.status)
    statuses.set(key, (statuses.get(key) ?? 0) + 1)
  }
  return `ok: legacy answered GET ${path} with ${[...statuses].map(([status, count]) => `${status} x${count}`).join(', ')}`
}

function ficusErrorCode (body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code
    return typeof code === 'string' && code.startsWith('FICUS_ERR_') ? code : undefined
  } catch {
    return undefined
  }
}

// How often connections that went idle during the close are closed: a response that began
// before the drain went out with keep-alive, and its connection must not hold the close open.
const IDLE_SWEEP_MS = 50

/**
 * The fixed part of shutdown's bound, on top of DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS: the time
 * cancelled handlers get to roll back (or finish a COMMIT already sent) and answer before their
 * connections are cut, then the time every pool and client gets to close.
 */
export const CANCEL_SETTLE_MS = 1_000
export const CLOSE_BOUND_MS = 2_000
export const SHUTDOWN_FIXED_BOUND_MS = CANCEL_SETTLE_MS + CLOSE_BOUND_MS

export interface GracefulCloseResult {
  /** True when the deadline passed and the remaining connections were cut. */
  readonly forced: boolean
  readonly ms: number
}

/**
 * Closes a listening server the polite way: `close` stops accepting and resolves once every
 * connection has ended; meanwhile idle keep-alive connections are closed as they appear. At the
 * deadline `beforeCut` runs (cancelling the work in flight, bounded by itself), then whatever is
 * left is cut.
 */
export async function closeGracefully (server: Server, close: () => Promise<void>, timeoutMs: number, beforeCut?: () => Promise<void>): Promise<GracefulCloseResult> {
  const started = performance.now()
  let forced = false
  const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS)
  const deadline = setTimeout(() => {
    forced = true
    const cut = (): void => server.closeAllConnections()
    if (beforeCut === undefined) return cut()
    beforeCut().then(cut, cut)
  }, timeoutMs)
  try {
    await close()
  } finally {
    clearInterval(sweep)
    clearTimeout(deadline)
  }
  return { forced, ms: Math.round(performance.now() - started) }
}

/** Resolves true when `work` settles within `timeoutMs`, false when it is given up on. */
export async function within (work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => { timer = setTimeout(resolve, timeoutMs, false) })
  try {
    return await Promise.race([work.then(() => true, () => true), late])
  } finally {
    clearTimeout(timer)
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
