// Test kit: a small steady load generator (a few workers on one keep-alive undici pool, each
// pacing itself to a fixed share of the rate) that counts every outcome: answers by status,
// errors by code. Bounded: it stops when asked, and every request has a timeout.
import { Pool } from 'undici'

const REQUEST_TIMEOUT_MS = 10_000

export interface LoadTarget {
  readonly host: string
  readonly path: string
  /** Sent with every request to this target (a session cookie, say); `host` wins. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface LoadResult {
  sent: number
  ok: number
  readonly byStatus: Record<string, number>
  readonly errors: Record<string, number>
}

export interface RunningLoad {
  readonly result: LoadResult
  /** Stops sending and resolves once every request in flight has finished. */
  stop (): Promise<LoadResult>
}

export function startLoad (options: { origin: string, targets: readonly LoadTarget[], workers: number, ratePerSecond: number }): RunningLoad {
  const pool = new Pool(options.origin, { connections: options.workers, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
  const result: LoadResult = { sent: 0, ok: 0, byStatus: {}, errors: {} }
  const intervalMs = (1_000 * options.workers) / options.ratePerSecond
  let running = true
  let turn = 0
  const worker = async (): Promise<void> => {
    while (running) {
      const started = performance.now()
      const target = options.targets[turn++ % options.targets.length] as LoadTarget
      result.sent++
      try {
        const answer = await pool.request({ method: 'GET', path: target.path, headers: { ...target.headers, host: target.host } })
        await answer.body.dump()
        result.byStatus[answer.statusCode] = (result.byStatus[answer.statusCode] ?? 0) + 1
        if (answer.statusCode >= 200 && answer.statusCode < 300) result.ok++
      } catch (error) {
        const code = (error as { code?: string }).code ?? (error as Error).message
        result.errors[code] = (result.errors[code] ?? 0) + 1
      }
      const wait = intervalMs - (performance.now() - started)
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
  const workers = Array.from({ length: options.workers }, worker)
  let stopped: Promise<LoadResult> | undefined
  return {
    result,
    stop () {
      running = false
      stopped ??= Promise.all(workers).then(async () => {
        await pool.close()
        return result
      })
      return stopped
    }
  }
}
