// Paced legacy-bound load for bench/console.ts, in a process of its own: whatever else the bench
// does (the console reader, the coordination) cannot delay its timers and count as the proxy's
// latency. `rate` requests a second for `seconds`, over 1,000 schools, on 20 connections; each
// latency is taken from when the request was due, so that a stall also counts for the requests it
// delayed. Prints one JSON line: requests, errors, p50Ms, p99Ms.
//   node bench/lib/paced-load.ts --port=P --path=/timetable --rate=300 --seconds=10
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { schoolId } from './fixtures.ts'

const CONNECTIONS = 20
const SCHOOLS_VISITED = 1_000

export interface PacedResult {
  readonly requests: number
  readonly errors: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export async function pacedLoad (port: number, path: string, rate: number, seconds: number): Promise<PacedResult> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS })
  const latencies: number[] = []
  let errors = 0
  let turn = 0
  const intervalMs = (1_000 * CONNECTIONS) / rate
  const end = performance.now() + seconds * 1_000
  await Promise.all(Array.from({ length: CONNECTIONS }, async (_, w) => {
    let next = performance.now() + (intervalMs * w) / CONNECTIONS
    while (next < end) {
      const wait = next - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const started = performance.now()
      try {
        const answer = await pool.request({ method: 'GET', path, headers: { host: `${schoolId(turn++ % SCHOOLS_VISITED)}.localhost` } })
        await answer.body.dump()
        if (answer.statusCode !== 200) errors++
      } catch {
        errors++
      }
      latencies.push(performance.now() - Math.min(started, next))
      next += intervalMs
    }
  }))
  await pool.close()
  latencies.sort((a, b) => a - b)
  return { requests: latencies.length, errors, p50Ms: latencies[Math.floor(latencies.length * 0.5)] ?? 0, p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0 }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, path: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' } } })
  process.stdout.write(`${JSON.stringify(await pacedLoad(Number(values.port), String(values.path), Number(values.rate), Number(values.seconds)))}\n`)
}
