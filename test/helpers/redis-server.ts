// A private redis-server on a free port, for tests that stop and restart Redis (the shared one on
// 6379 is never touched). Stopped at the end of the test; every wait is bounded.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer, connect } from 'node:net'
import { stopProcess } from './flask-app.ts'
import type { Teardown } from './flask-app.ts'

const START_TIMEOUT_MS = 10_000
const POLL_MS = 25

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  /** Stops the server (SIGTERM, then SIGKILL); the port stays reserved for `start`. */
  stop (): Promise<void>
  /** Starts it again on the same port, empty. */
  start (): Promise<void>
  readonly running: boolean
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

export async function startRedisServer (t: Teardown): Promise<PrivateRedis> {
  const port = await freePort()
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) return
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'ignore', 'pipe'] })
    child = proc
    const deadline = Date.now() + START_TIMEOUT_MS
    while (!(await accepts(port))) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`)
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} in ${START_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    }
  }
  const stop = async (): Promise<void> => {
    if (child !== undefined) await stopProcess(child)
  }
  t.teardown(stop)
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    stop,
    get running () { return child !== undefined && child.exitCode === null && child.signalCode === null }
  }
}
