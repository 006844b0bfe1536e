// Protocol upgrades (WebSocket) to legacy: once the edge has resolved the school, checked the
// path and decided on the session cookie exactly as for any request, the upgrade request goes to
// the path's upstream with the same header rules. Legacy's answer head is read and passed on under
// the rules of any legacy response; from then on the two sockets are relayed byte for byte,
// whatever legacy answered (its 101, or a refusal that then closes). Every tunnel has an idle
// limit and a total lifetime, the process a cap on how many are open at once, and on shutdown
// each is closed cleanly after the drain: a WebSocket with a close handshake (1001, going away),
// anything else with FIN both ways.
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { ResponseHeaderRules } from './headers.ts'
import type { LegacyUpstream } from './upstreams.ts'
import { clientResponseHead, httpHead, ResponseHeadReader, switchedToWebSocket, type UpgradeResponse } from './upgrade-response.ts'
import { closeFrame, FrameBoundaries } from './websocket-frames.ts'

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

// After a clean close is begun, a peer that does not finish its side is cut after this.
const CLOSE_BOUND_MS = 1_000
// RFC 6455 section 7.4.1: the server is going away.
const GOING_AWAY = 1001

interface Tunnel {
  readonly client: Duplex
  readonly upstream: Socket
  readonly timer: NodeJS.Timeout
  /** Both directions, frame by frame when legacy switched to WebSocket. */
  readonly toUpstream: Relay
  readonly toClient: Relay
  readonly websocket: boolean
}

export class Tunnels {
  readonly #limits: TunnelLimits
  readonly #open = new Set<Tunnel>()
  // Tunnels whose upstream connection or answer is still awaited hold a slot too.
  #opening = 0
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
    return this.#closing || this.#open.size + this.#opening >= this.#limits.max
  }

  /**
   * Connects to `upstream`, sends the request head and the client's early bytes, and reads
   * legacy's answer head. Once it has come, `onConnected` runs (the caller takes the client
   * socket), the head is written to the client under `rules`, and the sockets are relayed.
   * `onFailed` gets the error when no connection or no valid answer head came within
   * `upstream.timeoutMs`, or either side closed first.
   */
  open (upstream: LegacyUpstream, requestHead: string, pending: PendingUpgrade, onConnected: () => void, onFailed: (error: Error) => void, onClosed: (ms: number) => void, rules: ResponseHeaderRules): void {
    const url = new URL(upstream.origin)
    const port = Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port)
    const socket = url.protocol === 'https:'
      ? tlsConnect({ host: url.hostname, port, servername: url.hostname, ALPNProtocols: ['http/1.1'] })
      : tcpConnect({ host: url.hostname, port })
    this.#opening++
    let settled = false
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      this.#opening--
      socket.off('error', failed)
      socket.off('close', closedEarly)
      socket.off('data', onData)
      pending.socket.off('close', abandoned)
      pending.socket.off('end', abandoned)
      return true
    }
    const failed = (error: Error): void => {
      if (!settle()) return
      socket.destroy()
      onFailed(error)
    }
    const closedEarly = (): void => failed(Object.assign(new Error('legacy closed the connection before answering the upgrade'), { code: 'ECONNRESET' }))
    // The client left (a FIN is enough: the server's sockets stay half open) before legacy answered.
    const abandoned = (): void => {
      if (!settle()) return
      socket.destroy()
      pending.socket.destroy()
    }
    const reader = new ResponseHeadReader()
    const onData = (chunk: Buffer): void => {
      let answer
      try {
        answer = reader.push(chunk)
      } catch (error) {
        failed(error as Error)
        return
      }
      if (answer === undefined || !settle()) return
      onConnected()
      this.#relay(socket, pending, answer.response, answer.rest, rules, onClosed)
    }
    socket.setTimeout(upstream.timeoutMs, () => failed(Object.assign(new Error('no answer to the upgrade in time'), { code: 'ETIMEDOUT' })))
    socket.once('error', failed)
    socket.once('close', closedEarly)
    pending.socket.once('close', abandoned)
    pending.socket.once('end', abandoned)
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      socket.setNoDelay(true)
      // latin1: Node read the client's header bytes as latin1; they go on as those bytes.
      socket.write(requestHead, 'latin1')
      // Sent now, not once legacy answers: legacy may wait for them before it does.
      if (pending.head.length > 0) socket.write(pending.head)
      socket.on('data', onData)
    })
  }

  #relay (upstream: Socket, pending: PendingUpgrade, response: UpgradeResponse, rest: Buffer, rules: ResponseHeaderRules, onClosed: (ms: number) => void): void {
    const client = pending.socket
    const opened = performance.now()
    const websocket = switchedToWebSocket(response)
    const handshakeStep = (): void => this.#endOnceBothClosed(tunnel)
    const tunnel: Tunnel = {
      client,
      upstream,
      timer: setTimeout(() => this.#end(tunnel), this.#limits.lifetimeMs),
      toUpstream: new Relay(client, upstream, websocket, handshakeStep),
      toClient: new Relay(upstream, client, websocket, handshakeStep),
      websocket
    }
    this.#open.add(tunnel)
    const released = (): void => {
      if (!client.destroyed || !upstream.destroyed || !this.#open.delete(tunnel)) return
      clearTimeout(tunnel.timer)
      onClosed(performance.now() - opened)
    }
    const cut = (): void => {
      client.destroy()
      upstream.destroy()
    }
    // An error on either side cuts both. A side that closed ends the other once what was
    // relayed to it has been written (a WebSocket's last frames, its close frame), bounded.
    client.on('error', cut)
    upstream.on('error', cut)
    client.on('close', () => {
      endWithin(upstream, CLOSE_BOUND_MS)
      released()
    })
    upstream.on('close', () => {
      endWithin(client, CLOSE_BOUND_MS)
      released()
    })
    // Idle means no byte either way: each side's clock is reset by the other's bytes too. Silent
    // peers are not worth a close handshake: the tunnel is cut.
    const clientSocket = client as Socket
    upstream.setTimeout(this.#limits.idleMs, cut)
    clientSocket.setTimeout(this.#limits.idleMs, cut)
    client.on('data', () => { upstream.setTimeout(this.#limits.idleMs) })
    upstream.on('data', () => { clientSocket.setTimeout(this.#limits.idleMs) })
    // latin1: the head's bytes go back exactly as they were read.
    client.write(clientResponseHead(response, rules), 'latin1')
    tunnel.toUpstream.start(pending.head, false)
    tunnel.toClient.start(rest, true)
    if (this.#closing) this.#close(tunnel)
  }

  // A clean close: FIN both ways, then a bound for peers that never close their side.
  #end (tunnel: Tunnel): void {
    endWithin(tunnel.client, CLOSE_BOUND_MS)
    endWithin(tunnel.upstream, CLOSE_BOUND_MS)
  }

  // A WebSocket is closed with a close handshake (RFC 6455 section 7): a close frame to each
  // side at the first frame boundary of its direction, the sockets ended once both sides have
  // answered with theirs; other protocols, whose framing ficus does not know, get FIN both ways.
  #close (tunnel: Tunnel): void {
    if (!tunnel.websocket) return this.#end(tunnel)
    tunnel.toClient.closeWith(closeFrame(GOING_AWAY, false))
    tunnel.toUpstream.closeWith(closeFrame(GOING_AWAY, true))
    this.#endOnceBothClosed(tunnel)
    for (const socket of [tunnel.client, tunnel.upstream]) setTimeout(() => socket.destroy(), CLOSE_BOUND_MS).unref()
  }

  #endOnceBothClosed (tunnel: Tunnel): void {
    if (tunnel.toClient.closing && tunnel.toUpstream.sourceDone && tunnel.toClient.sourceDone) this.#end(tunnel)
  }

  /** Refuses new tunnels and closes every open one cleanly; resolves once all are gone (bounded). */
  async closeAll (): Promise<number> {
    this.#closing = true
    const count = this.#open.size
    const closed = [...this.#open].map((tunnel) => new Promise<void>((resolve) => {
      tunnel.client.once('close', () => resolve())
      if (tunnel.client.destroyed) resolve()
      this.#close(tunnel)
    }))
    await Promise.all(closed)
    return count
  }
}

/** FIN once what is written has gone out; a peer that does not close its side is cut after `ms`. */
function endWithin (socket: Duplex, ms: number): void {
  if (socket.destroyed) return
  socket.end()
  setTimeout(() => socket.destroy(), ms).unref()
}

/**
 * One direction of a tunnel: the source's bytes written to the destination as they come, the
 * source paused while the destination is full. For WebSocket, frames are followed so that a close
 * frame of ficus's own goes in between two frames, never inside one, and nothing after it.
 */
class Relay {
  readonly #source: Duplex
  readonly #destination: Duplex
  readonly #frames: FrameBoundaries | undefined
  readonly #onSourceDone: () => void
  #closeFrame: Buffer | undefined
  #closing = false
  #cut = false
  #sourceDone = false
  #waiting = false

  constructor (source: Duplex, destination: Duplex, websocket: boolean, onSourceDone: () => void) {
    this.#source = source
    this.#destination = destination
    this.#frames = websocket ? new FrameBoundaries() : undefined
    this.#onSourceDone = onSourceDone
  }

  /** Whether a close was asked of this direction. */
  get closing (): boolean {
    return this.#closing
  }

  /** The source has sent its close frame, or ended. */
  get sourceDone (): boolean {
    return this.#sourceDone
  }

  /** Starts relaying; `first` are source bytes already read, to be written (or, when not `write`, already sent). */
  start (first: Buffer, write: boolean): void {
    if (first.length > 0) this.#onData(first, write)
    this.#source.on('data', (chunk: Buffer) => this.#onData(chunk, true))
    this.#source.on('end', () => {
      if (!this.#cut) this.#destination.end()
      this.#markSourceDone()
    })
  }

  /** Writes `frame` to the destination at the next frame boundary, and nothing of the source after it. */
  closeWith (frame: Buffer): void {
    if (this.#closing) return
    this.#closing = true
    if (this.#cut) return
    if (this.#frames?.atBoundary === true) this.#cutWith(frame)
    else this.#closeFrame = frame
  }

  #onData (chunk: Buffer, write: boolean): void {
    const frames = this.#frames
    if (frames === undefined) {
      if (write) this.#forward(chunk)
      return
    }
    let at = 0
    while (at < chunk.length) {
      at = frames.advance(chunk, at)
      if (!frames.atBoundary || this.#cut) {
        if (frames.closeSeen) this.#markSourceDone()
        continue
      }
      if (frames.closeSeen) {
        // The source's own close frame goes through; the destination then needs no other.
        if (write) this.#forward(chunk.subarray(0, at))
        this.#cutWith(undefined)
        this.#markSourceDone()
      } else if (this.#closeFrame !== undefined) {
        if (write) this.#forward(chunk.subarray(0, at))
        this.#cutWith(this.#closeFrame)
      }
    }
    if (write && !this.#cut) this.#forward(chunk)
  }

  #cutWith (frame: Buffer | undefined): void {
    this.#cut = true
    this.#closeFrame = undefined
    if (frame !== undefined) this.#forward(frame)
    // Nothing more is written, but the source is still read: its close frame is awaited.
    if (this.#waiting) this.#source.resume()
  }

  #markSourceDone (): void {
    if (this.#sourceDone) return
    this.#sourceDone = true
    this.#onSourceDone()
  }

  #forward (bytes: Buffer): void {
    if (bytes.length === 0 || this.#destination.write(bytes) || this.#waiting) return
    this.#waiting = true
    this.#source.pause()
    this.#destination.once('drain', () => {
      this.#waiting = false
      if (!this.#cut) this.#source.resume()
    })
  }
}

/** The upgrade request as sent to legacy: request line, headers as given (already rewritten). */
export function upgradeRequestHead (method: string, target: string, headers: IncomingHttpHeaders): string {
  return httpHead(`${method} ${target} HTTP/1.1`, headers)
}
