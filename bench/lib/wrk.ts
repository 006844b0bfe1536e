// One wrk run on the load core, read back from the JSON line the bench script's `done` prints.
import { execFile } from 'node:child_process'

export interface WrkResult {
  readonly requests: number
  readonly durationUs: number
  readonly bytes: number
  readonly p50Us: number
  readonly p90Us: number
  readonly p99Us: number
  readonly maxUs: number
  readonly errors: { readonly connect: number, readonly read: number, readonly write: number, readonly status: number, readonly timeout: number }
}

export interface WrkOptions {
  readonly wrk: string
  readonly taskset: string
  readonly cpu: number
  readonly script: string
  readonly connections: number
  readonly seconds: number
  readonly port: number
  readonly path: string
  /** Further arguments of the script after the path: the number of schools, a session tag. */
  readonly scriptArgs?: readonly string[]
}

export function runWrk (options: WrkOptions): Promise<WrkResult> {
  const args = ['-c', String(options.cpu), options.wrk, '-t', '1', '-c', String(options.connections), '-d', `${options.seconds}s`,
    '--timeout', '5s', '-s', options.script, `http://127.0.0.1:${options.port}`, '--', options.path, ...(options.scriptArgs ?? [])]
  return new Promise((resolve, reject) => {
    execFile(options.taskset, args, { timeout: (options.seconds + 30) * 1_000 }, (error, stdout, stderr) => {
      if (error !== null) return reject(new Error(`wrk failed: ${error.message}\n${stderr}`))
      const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '))
      if (line === undefined) return reject(new Error(`wrk printed no result:\n${stdout}\n${stderr}`))
      resolve(JSON.parse(line.slice('BENCH_RESULT '.length)) as WrkResult)
    })
  })
}

export function errorCount (result: WrkResult): number {
  const e = result.errors
  return e.connect + e.read + e.write + e.status + e.timeout
}
