// Test kit: a legacy app that speaks WebSocket (the `ws` package) and plain HTTP on one loopback
// port 0. Every WebSocket message is echoed back as it came (text as text, binary as binary);
// every upgrade request is recorded as it arrived; plain requests get `ws-app <method> <url>`.
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
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
  close (): Promise<void>
}

export async function startWsEchoApp (t: TeardownHost): Promise<WsEchoApp> {
  const upgrades: UpgradeRecord[] = []
  const requests: string[] = []
  const sockets: WebSocket[] = []
  const closeCodes: number[] = []
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`)
    const text = `ws-app ${req.method ?? ''} ${req.url ?? ''}`
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  })
  const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024 })
  server.on('upgrade', (req, socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws)
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
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
  return { server, url: `http://127.0.0.1:${port}`, port, upgrades, requests, sockets, closeCodes, close }
}
