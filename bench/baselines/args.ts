// What every Node baseline is told by bench/run.ts.
export interface BaselineArgs {
  readonly port: number
  /** Origin of the upstream, e.g. http://127.0.0.1:8081 */
  readonly upstream: string
}

export function baselineArgs (env: Readonly<Record<string, string | undefined>>): BaselineArgs {
  const port = Number(env.BENCH_PORT)
  const upstream = env.BENCH_UPSTREAM
  if (!Number.isInteger(port) || port <= 0 || upstream === undefined) {
    throw new Error('BENCH_PORT and BENCH_UPSTREAM are required, e.g. BENCH_PORT=8090 BENCH_UPSTREAM=http://127.0.0.1:8081')
  }
  return { port, upstream }
}

export function exitOnSignal (close: () => Promise<void>): void {
  const stop = (): void => { void close().finally(() => process.exit(0)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
