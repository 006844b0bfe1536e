// Processes under test: started pinned to a core, watched through /proc, stopped by their own pid.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

const READY_TIMEOUT_MS = 15_000
const STOP_GRACE_MS = 5_000
// Clock ticks per second of /proc/<pid>/stat: 100 on every Linux build that matters (getconf CLK_TCK).
export const CLOCK_TICKS_PER_SECOND = 100
const PROBE_BODY_KEPT = 4_096

export interface Pinned {
  readonly child: ChildProcess
  readonly pid: number
  output (): string
  stop (): Promise<void>
}

/** Starts `command` on `cpu` through taskset, which execs it: the pid is the process itself. */
export function spawnPinned (taskset: string, cpu: number | string, command: string, args: readonly string[], env: NodeJS.ProcessEnv): Pinned {
  const child = spawn(taskset, ['-c', String(cpu), command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-8_000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  return {
    child,
    pid: child.pid,
    output: () => output,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(timer)
    }
  }
}

export interface Probe {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly bytes: number
}

export function get (port: number, path: string, host: string, headers: Readonly<Record<string, string>> = {}): Promise<Probe & { readonly body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { ...headers, host }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes <= PROBE_BODY_KEPT) chunks.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(5_000, () => req.destroy(new Error('probe timed out')))
    req.end()
  })
}

/** Waits until `port` answers `path` at all (any status), or the process dies. */
export async function waitReady (port: number, path: string, host: string, process?: Pinned): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (process !== undefined && process.child.exitCode !== null) {
      throw new Error(`exited with ${process.child.exitCode} before listening:\n${process.output()}`)
    }
    try {
      await get(port, path, host)
      return
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`port ${port} not answering after ${READY_TIMEOUT_MS} ms: ${(error as Error).message}\n${process?.output() ?? ''}`)
      await sleep(50)
    }
  }
}

/** utime + stime of one process, in clock ticks. */
export function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

export function rssBytes (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? 0 : Number(match[1]) * 1_024
}

export interface CoreTimes {
  readonly busy: number
  readonly total: number
}

/** Busy and total ticks of each core, from /proc/stat. */
export function coreTimes (): CoreTimes[] {
  const cores: CoreTimes[] = []
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const match = /^cpu(\d+) (.*)$/.exec(line)
    if (match === null) continue
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (match[2] ?? '').trim().split(/\s+/).map(Number)
    const busy = user + nice + system + irq + softirq + steal
    cores[Number(match[1])] = { busy, total: busy + idle + iowait }
  }
  return cores
}

/** The process and every process under it (a cluster primary and its workers). */
export function processTree (pid: number): number[] {
  const pids = [pid]
  for (let i = 0; i < pids.length; i++) {
    const parent = pids[i] as number
    try {
      for (const task of readdirSync(`/proc/${parent}/task`)) {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim()
        if (children !== '') pids.push(...children.split(' ').map(Number))
      }
    } catch {
      // Gone between the listing and the read.
    }
  }
  return pids
}

/** utime + stime summed over the given processes; one that has gone counts 0. */
export function treeCpuTicks (pids: readonly number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try { ticks += cpuTicks(pid) } catch {}
  }
  return ticks
}

export function treeRssBytes (pids: readonly number[]): number {
  let bytes = 0
  for (const pid of pids) {
    try { bytes += rssBytes(pid) } catch {}
  }
  return bytes
}
