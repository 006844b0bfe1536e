// Protocol upgrades (WebSocket) to legacy: once the edge has resolved the school, checked the
// path and decided on the session cookie exactly as for any request, the upgrade request goes to
// the path's upstream with the same header rules, and from then on the two sockets are piped
// byte for byte, whatever legacy answers (its 101, or a refusal that then closes). Every tunnel
// has an idle limit and a total lifetime, the process a cap on how many are open at once, and on
// shutdown each is ended cleanly (FIN both ways) after the drain.
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { LegacyUpstream } from './upstreams.ts'

export interface TunnelLimits {
  /** No byte either way for this long closes the tunnel. */
  readonly idleMs: number
  /** A tunnel is closed this long after it opened, busy or not. */
  readonly lifetimeMs: number
  /** Tunnels open at once in this process; one more is refused with 503. */
  readonly max: number
}

/** What the upgrade listener hands over with the raw request. */
export interface PendingUpgrade {
  readonly socket: Duplex
  readonly head: Buffer
}

const kUpgrade = Symbol('ficus.upgrade')
type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

/** Marks a raw request as an upgrade whose socket is ficus's to tunnel or answer. */
export function markUpgrade (raw: IncomingMessage, pending: PendingUpgrade): void {
  (raw as UpgradeRequest)[kUpgrade] = pending
}

/** The pending upgrade of this request, when it came through the upgrade listener. */
export function pendingUpgrade (raw: IncomingMessage): PendingUpgrade | undefined {
  return (raw as UpgradeRequest)[kUpgrade]
}

/** The protocols an Upgrade header offers, lower case, cleartext HTTP/2 left out (it may be ignored). */
export function offeredProtocols (upgrade: string | undefined): string[] {
  if (upgrade === undefined) return []
  return upgrade.split(',').map((token) => token.trim().toLowerCase()).filter((token) => token !== '' && token !== 'h2c')
}

// After the clean close at shutdown, a peer that does not close its side is cut after this.
const CLOSE_BOUND_MS = 1_000

interface Tunnel {
  readonly client: Duplex
  readonly upstream: Socket
  readonly timer: NodeJS.Timeout
}

export class Tunnels {
  readonly #limits: TunnelLimits
  readonly #open = new Set<Tunnel>()
  #closing = false

  constructor (limits: TunnelLimits) {
    this.#limits = limits
  }

  get size (): number {
    return this.#open.size
  }

  get limits (): TunnelLimits {
    return this.#limits
  }

  /** Whether one more tunnel may open now. */
  get full (): boolean {
    return this.#closing || this.#open.size >= this.#limits.max
  }

  /**
   * Connects to `upstream`; once connected, `onConnected` runs (the caller takes the client
   * socket), the request head and the client's early bytes are sent, and the sockets are piped.
   * `onFailed` gets the error when no connection could be made within `upstream.timeoutMs`.
   */
  open (upstream: LegacyUpstream, requestHead: string, pending: PendingUpgrade, onConnected: () => void, onFailed: (error: Error) => void, onClosed: (ms: number) => void): void {
    const url = new URL(upstream.origin)
    const port = Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port)
    const socket = url.protocol === 'https:'
      ? tlsConnect({ host: url.hostname, port, servername: url.hostname, ALPNProtocols: ['http/1.1'] })
      : tcpConnect({ host: url.hostname, port })
    let connected = false
    const failed = (error: Error): void => {
      if (connected) return
      socket.destroy()
      onFailed(error)
    }
    socket.setTimeout(upstream.timeoutMs, () => failed(Object.assign(new Error('no connection in time'), { code: 'ETIMEDOUT' })))
    socket.once('error', failed)
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      connected = true
      socket.off('error', failed)
      onConnected()
      this.#pipe(socket, requestHead, pending, onClosed)
    })
  }

  #pipe (upstream: Socket, requestHead: string, pending: PendingUpgrade, onClosed: (ms: number) => void): void {
    const client = pending.socket
    const opened = performance.now()
    const tunnel: Tunnel = { client, upstream, timer: setTimeout(() => this.#end(tunnel), this.#limits.lifetimeMs) }
    this.#open.add(tunnel)
    const finish = (): void => {
      if (!this.#open.delete(tunnel)) return
      clearTimeout(tunnel.timer)
      client.destroy()
      upstream.destroy()
      onClosed(performance.now() - opened)
    }
    // An error or a full close on either side ends both; a half close (FIN) is passed on by pipe.
    client.on('error', finish)
    upstream.on('error', finish)
    client.on('close', finish)
    upstream.on('close', finish)
    // Idle means no byte either way: each side's clock is reset by the other's bytes too.
    const clientSocket = client as Socket
    const idle = (): void => finish()
    upstream.setTimeout(this.#limits.idleMs, idle)
    clientSocket.setTimeout(this.#limits.idleMs, idle)
    client.on('data', () => { upstream.setTimeout(this.#limits.idleMs) })
    upstream.on('data', () => { clientSocket.setTimeout(this.#limits.idleMs) })
    upstream.setNoDelay(true)
    upstream.write(requestHead)
    if (pending.head.length > 0) upstream.write(pending.head)
    client.pipe(upstream)
    upstream.pipe(client)
  }

  // A clean close: FIN both ways, then a bound for peers that never close their side.
  #end (tunnel: Tunnel): void {
    tunnel.client.end()
    tunnel.upstream.end()
    setTimeout(() => {
      tunnel.client.destroy()
      tunnel.upstream.destroy()
    }, CLOSE_BOUND_MS).unref()
  }

  /** Refuses new tunnels and ends every open one cleanly; resolves once all are gone (bounded). */
  async closeAll (): Promise<number> {
    this.#closing = true
    const count = this.#open.size
    const closed = [...this.#open].map((tunnel) => new Promise<void>((resolve) => {
      tunnel.client.once('close', () => resolve())
      if (tunnel.client.destroyed) resolve()
      this.#end(tunnel)
    }))
    await Promise.all(closed)
    return count
  }
}

/** The upgrade request as sent to legacy: request line, headers as given (already rewritten). */
export function upgradeRequestHead (method: string, target: string, headers: IncomingHttpHeaders): string {
  let head = `${method} ${target} HTTP/1.1\r\n`
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    if (Array.isArray(value)) for (const item of value) head += `${name}: ${item}\r\n`
    else head += `${name}: ${value}\r\n`
  }
  return head + '\r\n'
}
