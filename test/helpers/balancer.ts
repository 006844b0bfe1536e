// Test kit: a small load balancer in front of ficus processes, as an orchestrator's would be:
// it polls each backend's /readyz, sends new requests round-robin only to ready backends over
// keep-alive pools, never retries, and counts what it saw (per-backend requests, upstream
// errors, `Connection: close` answers, readiness changes).
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream'
import { Pool } from 'undici'
import type { TeardownHost } from './recording-legacy.ts'

const HEALTH_POLL_MS = 100
const UPSTREAM_TIMEOUT_MS = 30_000
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host'])

export interface BalancerStats {
  readonly forwarded: Record<string, number>
  readonly connectionClose: Record<string, number>
  readonly upstreamErrors: Array<{ backend: string, error: string }>
  readonly readinessChanges: Array<{ backend: string, ready: boolean, at: number }>
  noBackend: number
}

interface Backend {
  readonly name: string
  readonly pool: Pool
  readonly adminPool: Pool
  ready: boolean
  polling: NodeJS.Timeout | undefined
}

export class TestBalancer {
  readonly stats: BalancerStats = { forwarded: {}, connectionClose: {}, upstreamErrors: [], readinessChanges: [], noBackend: 0 }
  readonly #backends: Backend[] = []
  readonly #server: Server
  #next = 0
  origin = ''

  constructor (t: TeardownHost) {
    this.#server = createServer((req, res) => this.#forward(req, res))
    t.teardown(async () => {
      for (const backend of [...this.#backends]) await this.remove(backend.name)
      this.#server.closeAllConnections()
      await new Promise((resolve) => this.#server.close(resolve))
    })
  }

  async listen (): Promise<string> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.origin = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this.origin
  }

  /** Adds a backend; it gets traffic once its /readyz answers 200. */
  add (name: string, origin: string, adminOrigin: string): void {
    const backend: Backend = {
      name,
      pool: new Pool(origin, { connections: 32, headersTimeout: UPSTREAM_TIMEOUT_MS, bodyTimeout: UPSTREAM_TIMEOUT_MS }),
      adminPool: new Pool(adminOrigin, { connections: 1, headersTimeout: 2_000, bodyTimeout: 2_000 }),
      ready: false,
      polling: undefined
    }
    this.stats.forwarded[name] = 0
    this.stats.connectionClose[name] = 0
    this.#backends.push(backend)
    const poll = async (): Promise<void> => {
      let ready = false
      try {
        const answer = await backend.adminPool.request({ method: 'GET', path: '/readyz' })
        await answer.body.dump()
        ready = answer.statusCode === 200
      } catch {}
      if (ready !== backend.ready) {
        backend.ready = ready
        this.stats.readinessChanges.push({ backend: name, ready, at: Date.now() })
      }
      if (this.#backends.includes(backend)) backend.polling = setTimeout(() => void poll(), HEALTH_POLL_MS)
    }
    void poll()
  }

  async remove (name: string): Promise<void> {
    const index = this.#backends.findIndex((backend) => backend.name === name)
    if (index === -1) return
    const [backend] = this.#backends.splice(index, 1)
    if (backend === undefined) return
    clearTimeout(backend.polling)
    await Promise.all([backend.pool.destroy(), backend.adminPool.destroy()])
  }

  isReady (name: string): boolean {
    return this.#backends.find((backend) => backend.name === name)?.ready ?? false
  }

  #pick (): Backend | undefined {
    for (let i = 0; i < this.#backends.length; i++) {
      const backend = this.#backends[(this.#next + i) % this.#backends.length]
      if (backend?.ready === true) {
        this.#next = (this.#next + i + 1) % this.#backends.length
        return backend
      }
    }
    return undefined
  }

  #forward (req: IncomingMessage, res: ServerResponse): void {
    const backend = this.#pick()
    if (backend === undefined) {
      this.stats.noBackend++
      res.writeHead(503).end('no backend ready')
      return
    }
    this.stats.forwarded[backend.name] = (this.stats.forwarded[backend.name] ?? 0) + 1
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && (!HOP_BY_HOP.has(name) || name === 'host')) headers[name] = value
    }
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    backend.pool.request({ method: req.method as 'GET', path: req.url ?? '/', headers, body: hasBody ? req : undefined }).then((answer) => {
      if (answer.headers.connection === 'close') this.stats.connectionClose[backend.name] = (this.stats.connectionClose[backend.name] ?? 0) + 1
      const out: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
      res.writeHead(answer.statusCode, out)
      pipeline(answer.body, res, () => {})
    }, (error: Error & { code?: string }) => {
      this.stats.upstreamErrors.push({ backend: backend.name, error: error.code ?? error.message })
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
  }
}
