// Test kit: a legacy app that speaks WebSocket (the `ws` package) and plain HTTP on one loopback
// port 0. Every WebSocket message is echoed back as it came (text as text, binary as binary);
// every upgrade request is recorded as it arrived; plain requests get `ws-app <method> <url>`.
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import type { TeardownHost } from './recording-legacy.ts'

export interface UpgradeRecord {
  readonly url: string
  readonly headers: IncomingHttpHeaders
}

export interface WsEchoApp {
  readonly server: Server
  readonly url: string
  readonly port: number
  /** Upgrade requests received, in order. */
  readonly upgrades: readonly UpgradeRecord[]
  /** Plain HTTP requests received (method and target). */
  readonly requests: readonly string[]
  /** The server side of every tunnel that was opened. */
  readonly sockets: readonly WebSocket[]
  /** Close codes the server side saw, in order. */
  readonly closeCodes: readonly number[]
  /** The length of every message the server side received, in order. */
  readonly messageLengths: readonly number[]
  /**
   * From now on, the newest tunnel's server side writes `afterBytes` more bytes and holds the
   * rest (say, the second half of a frame) in order until the returned function is called.
   */
  holdWrites (afterBytes: number): () => void
  close (): Promise<void>
}

export interface WsEchoOptions {
  /** Header lines added to every 101, e.g. `Set-Cookie: session=x; Domain=.localhost`. */
  readonly upgradeHeaders?: readonly string[]
}

export async function startWsEchoApp (t: TeardownHost, options: WsEchoOptions = {}): Promise<WsEchoApp> {
  const upgrades: UpgradeRecord[] = []
  const requests: string[] = []
  const sockets: WebSocket[] = []
  const closeCodes: number[] = []
  const messageLengths: number[] = []
  const gates = new Map<WebSocket, WriteGate>()
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`)
    const text = `ws-app ${req.method ?? ''} ${req.url ?? ''}`
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  })
  const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024 })
  const extra = options.upgradeHeaders ?? []
  if (extra.length > 0) wss.on('headers', (lines) => lines.push(...extra))
  server.on('upgrade', (req, socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    const gate = new WriteGate(socket as Socket)
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws)
      gates.set(ws, gate)
      ws.on('message', (data, isBinary) => {
        messageLengths.push((data as Buffer).length)
        ws.send(data, { binary: isBinary })
      })
      ws.on('close', (code) => closeCodes.push(code))
      ws.on('error', () => undefined)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const ws of sockets) ws.terminate()
    wss.close()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)
  const holdWrites = (afterBytes: number): () => void => {
    const gate = gates.get(sockets.at(-1) as WebSocket)
    if (gate === undefined) throw new Error('no tunnel to hold')
    return gate.hold(afterBytes)
  }
  return { server, url: `http://127.0.0.1:${port}`, port, upgrades, requests, sockets, closeCodes, messageLengths, holdWrites, close }
}

type WriteCallback = (error?: Error | null) => void

/**
 * Stands between `ws` and its socket (either side's): once held, writes past a byte budget wait,
 * in order, with the socket's end, until released. ws writes Buffers once the handshake is done.
 */
export class WriteGate {
  readonly #write: (chunk: Buffer, callback?: WriteCallback) => boolean
  readonly #end: () => void
  #budget = Infinity
  #held: Array<() => void> | undefined

  constructor (socket: Socket) {
    this.#write = socket.write.bind(socket) as (chunk: Buffer, callback?: WriteCallback) => boolean
    this.#end = socket.end.bind(socket) as () => void
    socket.write = ((chunk: Buffer, ...rest: unknown[]) => this.#onWrite(chunk, rest.find((arg) => typeof arg === 'function') as WriteCallback | undefined)) as Socket['write']
    // ws ends its socket with no arguments once the close handshake is done.
    socket.end = (() => {
      if (this.#held === undefined) this.#end()
      else this.#held.push(() => this.#end())
      return socket
    }) as Socket['end']
  }

  hold (afterBytes: number): () => void {
    this.#budget = afterBytes
    return () => {
      const held = this.#held ?? []
      this.#budget = Infinity
      this.#held = undefined
      for (const write of held) write()
    }
  }

  #onWrite (chunk: Buffer, callback: WriteCallback | undefined): boolean {
    if (this.#held !== undefined) {
      this.#held.push(() => this.#write(chunk, callback))
      return false
    }
    if (chunk.length <= this.#budget) {
      this.#budget -= chunk.length
      return this.#write(chunk, callback)
    }
    const sent = chunk.subarray(0, this.#budget)
    const rest = chunk.subarray(this.#budget)
    this.#budget = 0
    this.#write(sent)
    this.#held = [() => this.#write(rest, callback)]
    return false
  }
}
