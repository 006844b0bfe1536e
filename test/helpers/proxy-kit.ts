// Test kit for the edge: ficus built by its own factory from a test configuration (temporary
// tenants and flags files, LEGACY_URL pointing at a recording legacy), listening on a loopback
// port 0, plus clients that send exactly the bytes a test wants (raw paths, duplicate headers,
// malformed requests) and read the answer back.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable, type Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { pino } from 'pino'
import { Client } from 'undici'
import { Flags, type FlagReader } from '../../flags/flags.ts'
import type { MigratedRoute } from '../../core/route.ts'
import { migratedRoute } from '../../core/route.ts'
import { buildAdmin, Readiness, type ReadinessCheck } from '../../proxy/admin.ts'
import { parseConfig, type Config } from '../../proxy/config.ts'
import { createFicus } from '../../proxy/create-ficus.ts'
import type { FicusMetrics } from '../../metrics/registry.ts'
import { FileTenantRegistry } from '../../tenants/file-registry.ts'
import { SOURCE_ROOT as PROJECT_ROOT } from './source-files.ts'
import { startRecordingLegacy, waitFor, DEFAULT_WAIT_MS, type RecordingLegacy, type TeardownHost } from './recording-legacy.ts'
import { compileCacheEnv } from './compile-cache.ts'

export { waitFor, DEFAULT_WAIT_MS }

export const ATTENDANCE_FLAG = 'attendance-page'
const RAW_TIMEOUT_MS = 5_000
const CLIENT_TIMEOUT_MS = 10_000

export const DEFAULT_TENANTS = Object.freeze({
  tenants: [
    { id: 'school-a', name: 'School A', status: 'active', cohorts: ['pilot'] },
    { id: 'school-b', name: 'School B', status: 'active', cohorts: [] },
    { id: 'school-m', name: 'School M', status: 'maintenance', cohorts: [] },
    { id: 'school-s', name: 'School S', status: 'suspended', cohorts: [] }
  ]
})

/** Unleash client features with `flag` on for exactly the schools listed. */
export function flagsOnFor (schools: readonly string[], flag = ATTENDANCE_FLAG): object {
  return {
    version: 2,
    features: [{
      name: flag,
      enabled: true,
      strategies: [{
        name: 'flexibleRollout',
        parameters: { rollout: '100', stickiness: 'tenantId', groupId: flag },
        constraints: [{ contextName: 'tenantId', operator: 'IN', values: [...schools] }]
      }]
    }]
  }
}

/** The answer of the test's migrated route: who served it and the URL it decided on. */
export interface NewRouteAnswer {
  readonly servedBy: 'new'
  readonly tenant: string
  readonly url: string
}

/** A migrated `/attendance` (GET, and HEAD through fastify) guarded by ATTENDANCE_FLAG. */
export const ATTENDANCE_ROUTE: MigratedRoute = migratedRoute({
  name: 'attendance.page',
  method: 'GET',
  url: '/attendance',
  flag: ATTENDANCE_FLAG,
  access: 'public',
  handler: async (request: FastifyRequest, reply: FastifyReply) => {
    const answer: NewRouteAnswer = { servedBy: 'new', tenant: request.tenant.id, url: request.url }
    return reply.send(answer)
  }
})

export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly [field: string]: unknown
}

export interface StartProxyOptions {
  /** Environment on top of the kit's (LEGACY_URL, TENANTS_FILE, FLAGS_FILE, LOG_LEVEL). */
  readonly env?: Readonly<Record<string, string>>
  readonly routes?: readonly MigratedRoute[]
  /** Content of the flags file (JSON-serialised unless a string); default: attendance on for school-a. */
  readonly flags?: unknown
  /** Content of the tenants file; default DEFAULT_TENANTS. */
  readonly tenants?: unknown
  /** Use this flag reader instead of the file-backed one. */
  readonly flagReader?: FlagReader
  /** Mount the shared session store the config (REDIS_URL, SESSION_*) describes. */
  readonly withSessions?: boolean
  /** The metrics the proxy records into (default: its own, out of the test's sight). */
  readonly metrics?: FicusMetrics
  /** The legacy lane in front of fastify's routing (default on). */
  readonly legacyLane?: boolean
  /** Runs on the app before it listens (hooks of the test's own). */
  readonly beforeListen?: (app: FastifyInstance) => void
}

export interface SendOptions {
  readonly method?: string
  /** Sent as is: undici does not normalise a path given to Client#request. */
  readonly path?: string
  /** Host header; default school-a.localhost. */
  readonly host?: string
  readonly headers?: Record<string, string | string[]>
  readonly body?: string | Buffer | Readable
}

export interface Answer {
  readonly statusCode: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Buffer
  readonly text: string
  header (name: string): string | undefined
}

export interface ProxyKit {
  readonly app: FastifyInstance
  readonly config: Config
  readonly port: number
  readonly origin: string
  /** The recording legacy behind this proxy (undefined when env.LEGACY_URL was given). */
  readonly legacy: RecordingLegacy
  readonly flagsFile: string
  readonly tenantsFile: string
  readonly registry: FileTenantRegistry
  readonly logs: readonly LogLine[]
  /** Replaces the flags file the way an editor does (write aside, rename over). */
  writeFlags (content: unknown): void
  send (options?: SendOptions): Promise<Answer>
  /** Waits (bounded) for a log line and returns it. */
  waitForLog (match: (line: LogLine) => boolean, what: string): Promise<LogLine>
}

export async function startProxy (t: TeardownHost, options: StartProxyOptions = {}): Promise<ProxyKit> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-proxy-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  const tenantsFile = join(dir, 'tenants.json')
  writeJson(flagsFile, options.flags ?? flagsOnFor(['school-a']))
  writeJson(tenantsFile, options.tenants ?? DEFAULT_TENANTS)

  const legacy = options.env?.LEGACY_URL === undefined && options.env?.LEGACY_UPSTREAMS === undefined ? await startRecordingLegacy(t) : undefined
  const config = parseConfig({
    LEGACY_URL: legacy?.url,
    TENANTS_FILE: tenantsFile,
    FLAGS_FILE: flagsFile,
    FLAGS_POLL_MS: '100',
    LOG_LEVEL: 'info',
    ...options.env
  })

  const logs: LogLine[] = []
  const logger = pino({ level: config.logLevel }, new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      callback()
    }
  }))

  const registry = new FileTenantRegistry({
    path: tenantsFile,
    pollIntervalMs: config.flagsPollMs,
    onReload: (count) => logger.info({ tenants: count }, 'tenants file reloaded'),
    onInvalid: (error) => logger.error({ err: error.message }, 'tenants file rejected, keeping the last good list')
  })
  await registry.start()
  t.teardown(() => registry.close())

  let flags = options.flagReader
  if (flags === undefined) {
    const fileFlags = await Flags.fromFile(flagsFile, logger, config.flagsPollMs)
    t.teardown(() => fileFlags.close())
    flags = fileFlags
  }

  const ficus = await createFicus(config, {
    logger,
    registry,
    flags,
    routes: options.routes ?? [ATTENDANCE_ROUTE],
    ...(options.withSessions === true ? {} : { sessions: false }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    processMetrics: false,
    console: false,
    ...(options.legacyLane === undefined ? {} : { legacyLane: options.legacyLane })
  })
  const app = ficus.app
  t.teardown(() => ficus.close())
  options.beforeListen?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  const origin = `http://127.0.0.1:${port}`

  const client = new Client(origin, { headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS })
  t.teardown(() => client.destroy())

  return {
    app,
    config,
    port,
    origin,
    get legacy (): RecordingLegacy {
      if (legacy === undefined) throw new Error('this proxy forwards to env.LEGACY_URL, not to a recording legacy')
      return legacy
    },
    flagsFile,
    tenantsFile,
    registry,
    logs,
    writeFlags: (content) => writeJson(flagsFile, content),
    send: (sendOptions) => send(client, sendOptions),
    async waitForLog (match, what) {
      await waitFor(() => logs.some(match), DEFAULT_WAIT_MS, `log line: ${what}`)
      return logs.find(match) as LogLine
    }
  }
}

/** Writes JSON (or a string as is) to a temporary name and renames it over `path`. */
export function writeJson (path: string, content: unknown): void {
  const aside = `${path}.${process.pid}.tmp`
  writeFileSync(aside, typeof content === 'string' ? content : JSON.stringify(content, null, 2))
  renameSync(aside, path)
}

async function send (client: Client, options: SendOptions = {}): Promise<Answer> {
  const headers: Record<string, string | string[]> = { host: options.host ?? 'school-a.localhost', ...options.headers }
  const response = await client.request({
    method: (options.method ?? 'GET') as 'GET',
    path: options.path ?? '/',
    headers,
    body: options.body
  })
  const body = Buffer.from(await response.body.arrayBuffer())
  return toAnswer(response.statusCode, response.headers as Record<string, string | string[] | undefined>, body)
}

function toAnswer (statusCode: number, headers: Record<string, string | string[] | undefined>, body: Buffer): Answer {
  return {
    statusCode,
    headers,
    body,
    text: body.toString('utf8'),
    header (name) {
      const value = headers[name.toLowerCase()]
      return Array.isArray(value) ? value.join(', ') : value
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Raw sockets: for request targets, header lines and framing that no HTTP client would send.

export interface RawResponse {
  readonly statusCode: number
  readonly statusLine: string
  /** Header lines as received: [name, value] in order, names in the sender's case. */
  readonly headerLines: ReadonlyArray<readonly [string, string]>
  readonly body: Buffer
  /** Every value of a header, case-insensitively, one per line. */
  values (name: string): string[]
}

/** One client connection that writes raw bytes and parses the responses as they come. */
export class RawConnection {
  readonly socket: Socket
  #received = Buffer.alloc(0)
  #offset = 0
  #closed = false
  readonly closedPromise: Promise<void>

  constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => { this.#received = Buffer.concat([this.#received, chunk]) })
    this.closedPromise = new Promise((resolve) => socket.once('close', () => { this.#closed = true; resolve() }))
    socket.on('error', () => undefined)
  }

  static async open (t: TeardownHost, port: number): Promise<RawConnection> {
    const socket = connect(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    await once(socket, 'connect')
    return new RawConnection(socket)
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Everything the server sent so far, as latin1 text. */
  get receivedText (): string {
    return this.#received.toString('latin1')
  }

  write (data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** The next complete response (1xx included); `head` for answers to HEAD, which have no body. */
  async response (options: { head?: boolean, timeoutMs?: number } = {}): Promise<RawResponse> {
    let parsed: { response: RawResponse, end: number } | undefined
    await waitFor(() => {
      parsed = parseResponse(this.#received, this.#offset, this.#closed, options.head ?? false)
      return parsed !== undefined || (this.#closed && this.#received.length === this.#offset)
    }, options.timeoutMs ?? RAW_TIMEOUT_MS, 'a complete response on the raw connection')
    if (parsed === undefined) throw new Error('the server closed the connection without a (complete) response')
    this.#offset = parsed.end
    return parsed.response
  }

  /** Waits (bounded) until the server closes the connection. */
  async waitClosed (timeoutMs = RAW_TIMEOUT_MS): Promise<void> {
    await waitFor(() => this.#closed, timeoutMs, 'the server to close the connection')
  }
}

/** Sends one raw request on a fresh connection and returns the first final response. */
export async function rawRequest (t: TeardownHost, port: number, request: string | Buffer, options: { head?: boolean } = {}): Promise<RawResponse> {
  const connection = await RawConnection.open(t, port)
  connection.write(request)
  let response = await connection.response(options)
  while (response.statusCode >= 100 && response.statusCode < 200) response = await connection.response(options)
  connection.socket.destroy()
  return response
}

function parseResponse (buffer: Buffer, from: number, closed: boolean, head: boolean): { response: RawResponse, end: number } | undefined {
  const headEnd = buffer.indexOf('\r\n\r\n', from, 'latin1')
  if (headEnd === -1) return undefined
  const [statusLine = '', ...lines] = buffer.subarray(from, headEnd).toString('latin1').split('\r\n')
  const statusCode = Number(statusLine.split(' ')[1])
  const headerLines = lines.map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon), line.slice(colon + 1).trim()] as const
  })
  const values = (name: string): string[] => headerLines.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v)
  const bodyStart = headEnd + 4
  const make = (body: Buffer, end: number): { response: RawResponse, end: number } => ({ response: { statusCode, statusLine, headerLines, body, values }, end })

  if (head || (statusCode >= 100 && statusCode < 200) || statusCode === 204 || statusCode === 304) return make(Buffer.alloc(0), bodyStart)
  const length = values('content-length')[0]
  if (length !== undefined) {
    const end = bodyStart + Number(length)
    return buffer.length >= end ? make(buffer.subarray(bodyStart, end), end) : undefined
  }
  if (values('transfer-encoding').some((v) => v.toLowerCase().includes('chunked'))) {
    const chunks: Buffer[] = []
    let at = bodyStart
    for (;;) {
      const lineEnd = buffer.indexOf('\r\n', at, 'latin1')
      if (lineEnd === -1) return undefined
      const size = parseInt(buffer.subarray(at, lineEnd).toString('latin1'), 16)
      if (size === 0) {
        const trailerEnd = buffer.indexOf('\r\n\r\n', lineEnd, 'latin1')
        return trailerEnd === -1 ? undefined : make(Buffer.concat(chunks), trailerEnd + 4)
      }
      if (buffer.length < lineEnd + 2 + size + 2) return undefined
      chunks.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size))
      at = lineEnd + 2 + size + 2
    }
  }
  return closed ? make(buffer.subarray(bodyStart), buffer.length) : undefined
}

// ---------------------------------------------------------------------------------------------
// Admin listener and ports.

export interface AdminKit {
  readonly app: FastifyInstance
  readonly origin: string
  readonly readiness: Readiness
}

export async function startAdmin (t: TeardownHost, parts: { token?: string, checks: readonly ReadinessCheck[] }): Promise<AdminKit> {
  const readiness = new Readiness()
  const app = await buildAdmin({ token: parts.token, checks: parts.checks, logger: pino({ level: 'silent' }) }, readiness)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, origin: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, readiness }
}

/** A loopback port that was free a moment ago and now refuses connections. */
export async function closedPort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  server.close()
  await once(server, 'close')
  return port
}

// ---------------------------------------------------------------------------------------------
// ficus as a process: `node proxy/main.ts`, as `npm start` runs it, on Node 24's type stripping.

export const MAIN_SCRIPT = fileURLToPath(new URL('../../proxy/main.ts', import.meta.url))
/** The project's root folder (test processes and ficus run from it). */
export { PROJECT_ROOT }
const STOP_TIMEOUT_MS = 10_000

export interface FicusProcess {
  readonly child: ChildProcess
  /** stdout JSON log lines parsed so far. */
  readonly logs: readonly LogLine[]
  readonly stderr: () => string
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  waitForLog (match: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>
}

/**
 * Spawns ficus with `env` only (plus PATH and HOME): no NODE_OPTIONS from the test runner, no
 * configuration from the shell. Killed at teardown if still running.
 */
export function spawnFicus (t: TeardownHost, env: Record<string, string>): FicusProcess {
  const child = spawn(process.execPath, [MAIN_SCRIPT], {
    cwd: PROJECT_ROOT,
    // No drain pause on SIGTERM unless a test asks for one: teardown stops processes often.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', DRAIN_DELAY_MS: '0', ...compileCacheEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  })
  const logs: LogLine[] = []
  let partial = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (line.trim() === '') continue
      try { logs.push(JSON.parse(line) as LogLine) } catch { logs.push({ level: 0, msg: line }) }
    }
  })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    async waitForLog (match, what, timeoutMs = STARTUP_TIMEOUT_MS) {
      await waitFor(() => logs.some(match) || child.exitCode !== null, timeoutMs, `ficus to log: ${what}`)
      const line = logs.find(match)
      if (line === undefined) throw new Error(`ficus exited (${child.exitCode}) before logging ${what}; stderr: ${stderr}`)
      return line
    }
  }
}
const STARTUP_TIMEOUT_MS = 20_000
