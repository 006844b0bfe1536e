// Starts the Flask + Flask-Session fixture (test/fixtures/flask/app.py) under Debian's python on
// a free port, and stops it at the end of the test. Every wait is bounded.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

export const SYSTEM_PYTHON = '/usr/bin/python3'
export const FLASK_FIXTURE_DIR = fileURLToPath(new URL('../fixtures/flask/', import.meta.url))
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 3_000

export interface Teardown { teardown (fn: () => unknown): void }

export interface FlaskAppOptions {
  readonly redisUrl: string
  readonly keyPrefix: string
  readonly useSigner?: boolean
  readonly secret?: string
  readonly cookieName?: string
  readonly tenantKey?: string
  readonly lifetimeSeconds?: number
  /** Another fixture of test/fixtures/flask/ (default app.py), with its own extra environment. */
  readonly script?: string
  readonly env?: Readonly<Record<string, string>>
}

/** What the fixture's pages answer (JSON). */
export interface FlaskBody {
  readonly school?: string
  readonly signed_in?: boolean
  readonly session: Record<string, unknown>
}

export interface FlaskResponse {
  readonly status: number
  readonly body: FlaskBody
  /** `name=value` of each Set-Cookie. */
  readonly setCookies: string[]
}

export interface FlaskApp {
  readonly url: string
  /** GET `path` as a browser on `host` would, sending `cookie` as the Cookie header. */
  get (path: string, options?: { host?: string, cookie?: string }): Promise<FlaskResponse>
  stop (): Promise<void>
}

export async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

export async function startFlaskApp (t: Teardown, options: FlaskAppOptions): Promise<FlaskApp> {
  const child = spawn(SYSTEM_PYTHON, [FLASK_FIXTURE_DIR + (options.script ?? 'app.py')], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PYTHONDONTWRITEBYTECODE: '1',
      REDIS_URL: options.redisUrl,
      SESSION_KEY_PREFIX: options.keyPrefix,
      SESSION_USE_SIGNER: options.useSigner === true ? '1' : '0',
      SECRET_KEY: options.secret ?? 'fixture-secret',
      SESSION_COOKIE_NAME: options.cookieName ?? 'session',
      SESSION_TENANT_KEY: options.tenantKey ?? 'tenant',
      SESSION_LIFETIME_SECONDS: String(options.lifetimeSeconds ?? 3600),
      ...options.env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const stop = (): Promise<void> => stopProcess(child)
  t.teardown(stop)

  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => fail(new Error(`Flask fixture did not start in ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS)
    const fail = (err: Error): void => { clearTimeout(timer); reject(err) }
    child.once('error', fail)
    child.once('exit', (code) => fail(new Error(`Flask fixture exited with ${code}: ${stderr}`)))
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const match = /FLASK_PORT (\d+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
  })
  const url = `http://127.0.0.1:${port}`

  return {
    url,
    async get (path, { host = 'school-a.example.org', cookie } = {}) {
      const headers: Record<string, string> = { host }
      if (cookie !== undefined) headers.cookie = cookie
      const res = await request(url + path, { headers, headersTimeout: 10_000, bodyTimeout: 10_000 })
      const raw = res.headers['set-cookie']
      const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
      return {
        status: res.statusCode,
        body: await res.body.json() as FlaskBody,
        setCookies: list.map((line) => line.split(';')[0] ?? '')
      }
    },
    stop
  }
}
