// Forwards a request to the legacy app exactly as the client sent it: method, path (in the
// canonical form the routing decision was taken on), raw query, end-to-end headers and the body
// streamed both ways. forwarder.ts does the streaming, over undici's dispatch API; each legacy
// upstream (legacy-adapter/upstreams.ts) has an undici pool of its own, with its own timeouts and
// keep-alive, so one slow or absent legacy app never holds the connections of another.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Pool, type Dispatcher } from 'undici'
import { currentForwardSignal } from '../cancellation/request-scope.ts'
import { CommonErrors } from '../core/errors.ts'
import { pathOf } from '../core/url.ts'
import { LegacyErrors } from './errors.ts'
import { classify, forwardPlain, forwardToLegacy, prewarmPool, type PlainForwardFailure, type PrewarmAnswer } from './forwarder.ts'
import { removeRequestHeaders, setForwardingHeaders } from './headers.ts'
import type { LegacyRouter, LegacyUpstream } from './upstreams.ts'
import { offeredProtocols, upgradeRequestHead, type PendingUpgrade, type Tunnels } from './tunnel.ts'

export interface LegacyAdapterOptions {
  /** Which upstream serves which path, and each upstream's pool settings. */
  readonly router: LegacyRouter
  /** The legacy shard of the request's school, or undefined for the main table. */
  readonly shardOf: (request: FastifyRequest) => string | undefined
  /** Where upgrade tunnels are kept (limits, count, shutdown). */
  readonly tunnels: Tunnels
  /** Send the client's Host to legacy (legacy builds its links from it), or legacy's own. */
  readonly preserveHost: boolean
  readonly bodyLimitBytes: number
  readonly requestIdHeader: string
  /** Response header naming the side that served, or undefined to leave it out. */
  readonly servedByHeader: string | undefined
  /** Whether the peer at this address may speak for the client in X-Forwarded-* headers. */
  readonly trustsPeer: (remoteAddress: string | undefined) => boolean
  /** Lower-case names dropped by default that legacy still receives. */
  readonly allowedHeaders: ReadonlySet<string>
  /** Legacy's session cookie, made host-only on the way back; undefined leaves cookies alone. */
  readonly hostOnlyCookie: string | undefined
  /**
   * Whether legacy's answer to this request must pass through fastify's onSend hooks (as a
   * stream given to `reply.send`); otherwise it is written straight to the client.
   */
  readonly throughReply: (request: FastifyRequest) => boolean
}


declare module 'fastify' {
  interface FastifyReply {
    /** Streams the request to legacy (the upstream of its path, or the one given) and its answer back. */
    toLegacy (upstream?: LegacyUpstream): FastifyReply
    /** Tunnels an upgrade request to the upstream of its path, when that upstream accepts its protocol. */
    tunnelToLegacy (pending: PendingUpgrade): FastifyReply
  }
  interface FastifyInstance {
    /**
     * Forwards a plain bodyless request (the legacy lane's) from Node's request to its response
     * without a fastify reply: `url` is the canonical URL the decision was taken on, `id` the
     * request id. Returns the upstream it went to, or undefined when no upstream serves the
     * school's shard (nothing sent: the caller hands the request to fastify, which refuses it).
     */
    legacyPlain (req: IncomingMessage, res: ServerResponse, url: string, shard: string | undefined, id: string, onFailure: PlainForwardFailure): LegacyUpstream | undefined
    /** Sends `connections` GETs of `path` at once to `upstream` through its pool (startup's pre-warm): not client traffic. */
    legacyPrewarm (upstream: LegacyUpstream, path: string, connections: number): Promise<PrewarmAnswer[]>
  }
  interface FastifyRequest {
    /** The legacy upstream this request went to; undefined when it went to none. */
    legacyUpstream: LegacyUpstream | undefined
  }
}

async function legacyAdapter (app: FastifyInstance, options: LegacyAdapterOptions): Promise<void> {
  const router = options.router
  // One pool per upstream, indexed by the upstream's position in the table.
  const pools = router.upstreams.map((upstream) => new Pool(upstream.origin, {
    connections: upstream.connections,
    keepAliveTimeout: upstream.keepAliveMs,
    headersTimeout: upstream.timeoutMs,
    bodyTimeout: upstream.timeoutMs
  }))
  // The path of each upstream's base URL, put in front of every path sent to it.
  const basePaths = router.upstreams.map((upstream) => upstream.url.slice(upstream.origin.length))
  // The Host legacy receives unless the client's is preserved: its own.
  const hosts = router.upstreams.map((upstream) => new URL(upstream.url).host)
  // The headers `upstream` receives for a request whose id is `id` (a copy: the client's stay as they came).
  const headersFor = (req: IncomingMessage, id: string, upstream: LegacyUpstream): IncomingHttpHeaders => {
    const headers = { ...req.headers }
    rewriteForLegacy(req, id, headers, options)
    headers.host = options.preserveHost ? req.headers.host : hosts[upstream.index]
    return headers
  }
  app.addHook('onClose', async () => { await Promise.all(pools.map(async (pool) => { await pool.destroy() })) })
  app.decorateRequest('legacyUpstream', undefined)
  const throughReply = options.throughReply

  app.decorate('legacyPrewarm', async function legacyPrewarm (upstream: LegacyUpstream, path: string, connections: number): Promise<PrewarmAnswer[]> {
    return await prewarmPool(pools[upstream.index] as Pool, basePaths[upstream.index] + path, hosts[upstream.index] as string, connections)
  })

  app.decorate('legacyPlain', function legacyPlain (req: IncomingMessage, res: ServerResponse, url: string, shard: string | undefined, id: string, onFailure: PlainForwardFailure): LegacyUpstream | undefined {
    const upstream = router.pick(pathOf(url), shard)
    if (upstream === undefined) return undefined
    const headers = headersFor(req, id, upstream)
    forwardPlain(pools[upstream.index] as Pool, { path: basePaths[upstream.index] + url, method: req.method as Dispatcher.HttpMethod, headers: headers as Record<string, string>, body: null }, req, res, options, onFailure)
    return upstream
  })

  app.decorateReply('toLegacy', function toLegacy (this: FastifyReply, chosen?: LegacyUpstream): FastifyReply {
    const request = this.request
    const url = request.url
    // The canonical path the routing decision was taken on, so no spelling reaches another app.
    const upstream = chosen ?? router.pick(pathOf(url), options.shardOf(request))
    if (upstream === undefined) return this.send(LegacyErrors.FICUS_ERR_LEGACY_SHARD_UNKNOWN(`shard ${String(options.shardOf(request))}`))
    request.legacyUpstream = upstream
    const length = request.headers['content-length']
    if (length !== undefined && Number(length) > options.bodyLimitBytes) {
      return this.send(LegacyErrors.FICUS_ERR_BODY_TOO_LARGE(`limit is ${options.bodyLimitBytes} bytes`))
    }
    // The hook that calls us runs before fastify reads the body, so legacy receives the client's
    // bytes as they arrive.
    let body: Readable | null = null
    if (length !== undefined) {
      if (length !== '0') body = request.raw
    } else if (request.headers['transfer-encoding'] !== undefined) {
      body = request.raw.pipe(new ByteLimit(options.bodyLimitBytes))
    }
    const headers = headersFor(request.raw, request.id, upstream)
    // The query exactly as the client sent it: a query is legacy's business.
    forwardToLegacy(pools[upstream.index] as Pool, {
      path: basePaths[upstream.index] + url,
      method: request.method,
      headers,
      body,
      signal: currentForwardSignal(),
      throughReply: throughReply(request)
    }, this, options)
    return this
  })

  const tunnels = options.tunnels
  app.decorateReply('tunnelToLegacy', function tunnelToLegacy (this: FastifyReply, pending: PendingUpgrade): FastifyReply {
    const request = this.request
    const url = request.url
    const path = pathOf(url)
    const upstream = router.pick(path, options.shardOf(request))
    if (upstream === undefined) return this.send(LegacyErrors.FICUS_ERR_LEGACY_SHARD_UNKNOWN(`shard ${String(options.shardOf(request))}`))
    request.legacyUpstream = upstream
    const offered = offeredProtocols(request.headers.upgrade)
    // Only a protocol the upstream is declared to speak: anything else could be read two ways.
    if (offered.length === 0 || !offered.every((protocol) => upstream.upgrades.includes(protocol))) {
      return this.send(CommonErrors.FICUS_ERR_UPGRADE_UNSUPPORTED(`${(request.headers.upgrade ?? '').slice(0, 64)} is not tunnelled to this path's legacy app`))
    }
    if (tunnels.full) return this.send(LegacyErrors.FICUS_ERR_TUNNEL_LIMIT(`${tunnels.limits.max} open`))
    const headers = headersFor(request.raw, request.id, upstream)
    headers.connection = 'upgrade'
    headers.upgrade = request.headers.upgrade
    const head = upgradeRequestHead(request.method, basePaths[upstream.index] + url, headers)
    tunnels.open(upstream, head, pending, () => {
      this.hijack()
      this.raw.detachSocket(pending.socket as Socket)
    }, (error) => { this.send(classify(error)) }, (ms) => {
      // The tunnel's line in the access log: no query, no header, as for any request.
      request.log.info({ tenant: request.tenant?.id, method: request.method, path, upstream: upstream.name, durationMs: Math.round(ms) }, 'tunnel closed')
    }, options)
    return this
  })
}

// The request headers legacy receives, for plain requests and upgrades alike: what ficus drops
// (hop-by-hop, spoofable, folded names) removed, then what ficus itself vouches for set.
function rewriteForLegacy (req: IncomingMessage, id: string, headers: IncomingHttpHeaders, options: LegacyAdapterOptions): void {
  const socket = req.socket
  const trusted = options.trustsPeer(socket.remoteAddress)
  removeRequestHeaders(headers, { trusted, allowed: options.allowedHeaders })
  setForwardingHeaders(headers, {
    clientAddress: clientAddressOf(socket.remoteAddress),
    protocol: 'encrypted' in socket ? 'https' : 'http',
    host: req.headers.host,
    port: socket.localPort,
    requestId: id,
    trusted
  }, options.requestIdHeader)
}

function clientAddressOf (remoteAddress: string | undefined): string {
  const address = remoteAddress ?? ''
  return address.startsWith('::ffff:') ? address.slice(7) : address
}

/** Passes bytes through until more than `limit` have gone by, then fails the upload. */
class ByteLimit extends Transform {
  readonly #limit: number
  #seen = 0

  constructor (limit: number) {
    super()
    this.#limit = limit
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length
    if (this.#seen > this.#limit) callback(LegacyErrors.FICUS_ERR_BODY_TOO_LARGE(`limit is ${this.#limit} bytes`))
    else callback(null, chunk)
  }
}

export default fp(legacyAdapter, { name: 'ficus-legacy-adapter', fastify: '5.x' })
