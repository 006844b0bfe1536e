// Forwards a request to the legacy app exactly as the client sent it: method, path (in the
// canonical form the routing decision was taken on), raw query, end-to-end headers and the body
// streamed both ways. reply-from does the streaming; each legacy upstream (legacy-adapter/
// upstreams.ts) has an undici pool of its own, with its own timeouts and keep-alive, so one slow
// or absent legacy app never holds the connections of another.
import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { Transform, type TransformCallback } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from'
import { Agent, Pool } from 'undici'
import { currentForwardSignal } from '../cancellation/request-scope.ts'
import { CommonErrors } from '../core/errors.ts'
import { FicusError } from '../errors/index.ts'
import { LegacyErrors } from './errors.ts'
import { endToEndResponseHeaders, hostOnlyCookie, removeRequestHeaders, setForwardingHeaders } from './headers.ts'
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
  /** Whether the peer may speak for the client in X-Forwarded-* headers. */
  readonly trustsPeer: (request: FastifyRequest) => boolean
  /** Lower-case names dropped by default that legacy still receives. */
  readonly allowedHeaders: ReadonlySet<string>
  /** Legacy's session cookie, made host-only on the way back; undefined leaves cookies alone. */
  readonly hostOnlyCookie: string | undefined
}

declare module 'fastify' {
  interface FastifyReply {
    /** Streams the request to legacy (the upstream of its path, or the one given) and its answer back. */
    toLegacy (upstream?: LegacyUpstream): FastifyReply
    /** Tunnels an upgrade request to the upstream of its path, when that upstream accepts its protocol. */
    tunnelToLegacy (pending: PendingUpgrade): FastifyReply
  }
  interface FastifyRequest {
    /** The legacy upstream this request went to; undefined when it went to none. */
    legacyUpstream: LegacyUpstream | undefined
  }
}

// Upstream failures that mean "legacy is not there" rather than "legacy is slow".
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'])
const SLOW = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'ETIMEDOUT'])

async function legacyAdapter (app: FastifyInstance, options: LegacyAdapterOptions): Promise<void> {
  const router = options.router
  const byOrigin = new Map(router.upstreams.map((upstream) => [upstream.origin, upstream]))
  // The agent keeps one pool per origin, and every upstream has an origin of its own.
  const agent = new Agent({
    factory (origin, agentOptions) {
      const upstream = byOrigin.get(String(origin))
      if (upstream === undefined) throw new Error(`no legacy upstream has the origin ${String(origin)}`)
      return new Pool(origin, {
        ...agentOptions,
        connections: upstream.connections,
        keepAliveTimeout: upstream.keepAliveMs,
        headersTimeout: upstream.timeoutMs,
        bodyTimeout: upstream.timeoutMs
      })
    }
  })
  // A fallback's request to legacy carries its request's cancellation signal (reply-from passes
  // none): legacy's work stops when the client goes away or ficus shuts down.
  const request = agent.request.bind(agent) as (opts: object, callback: unknown) => void
  agent.request = ((opts: object, callback: unknown) => {
    const signal = currentForwardSignal()
    return request(signal === undefined ? opts : { ...opts, signal }, callback)
  }) as typeof agent.request
  // No `base`: each request names its upstream (getUpstream below).
  await app.register(replyFrom, {
    undici: agent,
    disableRequestLogging: true
  })
  app.decorateRequest('legacyUpstream', undefined)

  const servedBy = options.servedByHeader
  const sessionCookie = options.hostOnlyCookie
  // Built once: reply.from() takes the same options object for every request.
  const fromOptions: FastifyReplyFromHooks = {
    // reply-from retries a GET that got 503 unless a delay function says otherwise; legacy's 503
    // is an answer to pass on, and a non-idempotent request must never be sent twice.
    retryDelay: () => null,
    getUpstream: (anyRequest) => (anyRequest as unknown as FastifyRequest).legacyUpstream?.url ?? '',
    rewriteRequestHeaders (anyRequest, headers) {
      const request = anyRequest as unknown as FastifyRequest
      rewriteForLegacy(request, headers, options)
      if (options.preserveHost) headers.host = request.headers.host
      return headers
    },
    rewriteHeaders (headers) {
      const kept = endToEndResponseHeaders(headers)
      const setCookie = kept['set-cookie']
      if (setCookie !== undefined && sessionCookie !== undefined) kept['set-cookie'] = hostOnlyCookie(setCookie, sessionCookie)
      if (servedBy !== undefined) kept[servedBy] = 'legacy'
      return kept
    },
    onError (reply, { error }) {
      reply.send(classify(error))
    }
  }
  // reply-from rebuilds the query through WHATWG URL (which re-encodes `'` and more) after a
  // decodeURIComponent that throws on `%zz` and refuses `../` anywhere in the URL; a query is
  // legacy's business, so it is handed over as the raw bytes the client sent.
  const rawQueryOptions: FastifyReplyFromHooks = {
    ...fromOptions,
    queryString: (_search: string | undefined, url: string) => url.slice(url.indexOf('?') + 1)
  }

  app.decorateReply('toLegacy', function toLegacy (this: FastifyReply, chosen?: LegacyUpstream): FastifyReply {
    const request = this.request
    const url = request.url
    const queryAt = url.indexOf('?')
    // The canonical path the routing decision was taken on, so no spelling reaches another app.
    const upstream = chosen ?? router.pick(queryAt === -1 ? url : url.slice(0, queryAt), options.shardOf(request))
    if (upstream === undefined) return this.send(LegacyErrors.FICUS_ERR_LEGACY_SHARD_UNKNOWN(`shard ${String(options.shardOf(request))}`))
    request.legacyUpstream = upstream
    const length = request.headers['content-length']
    if (length !== undefined && Number(length) > options.bodyLimitBytes) {
      return this.send(LegacyErrors.FICUS_ERR_BODY_TOO_LARGE(`limit is ${options.bodyLimitBytes} bytes`))
    }
    // reply-from streams `request.body` when it is a stream; the hook that calls us runs before
    // fastify reads the body, so legacy receives the client's bytes as they arrive.
    if (length !== undefined) {
      if (length !== '0') request.body = request.raw
    } else if (request.headers['transfer-encoding'] !== undefined) {
      request.body = request.raw.pipe(new ByteLimit(options.bodyLimitBytes))
    }
    // An empty query (`/x?`) cannot come back from the queryString hook; reply-from keeps it.
    if (queryAt === -1 || queryAt === url.length - 1) return this.from(url, fromOptions)
    return this.from(url.slice(0, queryAt), rawQueryOptions)
  })

  const tunnels = options.tunnels
  app.decorateReply('tunnelToLegacy', function tunnelToLegacy (this: FastifyReply, pending: PendingUpgrade): FastifyReply {
    const request = this.request
    const url = request.url
    const queryAt = url.indexOf('?')
    const upstream = router.pick(queryAt === -1 ? url : url.slice(0, queryAt), options.shardOf(request))
    if (upstream === undefined) return this.send(LegacyErrors.FICUS_ERR_LEGACY_SHARD_UNKNOWN(`shard ${String(options.shardOf(request))}`))
    request.legacyUpstream = upstream
    const offered = offeredProtocols(request.headers.upgrade)
    // Only a protocol the upstream is declared to speak: anything else could be read two ways.
    if (offered.length === 0 || !offered.every((protocol) => upstream.upgrades.includes(protocol))) {
      return this.send(CommonErrors.FICUS_ERR_UPGRADE_UNSUPPORTED(`${(request.headers.upgrade ?? '').slice(0, 64)} is not tunnelled to this path's legacy app`))
    }
    if (tunnels.full) return this.send(LegacyErrors.FICUS_ERR_TUNNEL_LIMIT(`${tunnels.limits.max} open`))
    const headers = { ...request.headers }
    rewriteForLegacy(request, headers, options)
    headers.host = options.preserveHost ? request.headers.host : new URL(upstream.origin).host
    headers.connection = 'upgrade'
    headers.upgrade = request.headers.upgrade
    const head = upgradeRequestHead(request.method, upstream.url.slice(upstream.origin.length) + url, headers)
    tunnels.open(upstream, head, pending, () => {
      this.hijack()
      this.raw.detachSocket(pending.socket as Socket)
    }, (error) => { this.send(classify(error)) }, (ms) => {
      // The tunnel's line in the access log: no query, no header, as for any request.
      request.log.info({ tenant: request.tenant?.id, method: request.method, path: queryAt === -1 ? url : url.slice(0, queryAt), upstream: upstream.name, durationMs: Math.round(ms) }, 'tunnel closed')
    }, options)
    return this
  })
}

// The request headers legacy receives, for plain requests and upgrades alike: what ficus drops
// (hop-by-hop, spoofable, folded names) removed, then what ficus itself vouches for set.
function rewriteForLegacy (request: FastifyRequest, headers: IncomingHttpHeaders, options: LegacyAdapterOptions): void {
  const trusted = options.trustsPeer(request)
  removeRequestHeaders(headers, { trusted, allowed: options.allowedHeaders })
  setForwardingHeaders(headers, {
    clientAddress: clientAddressOf(request),
    protocol: 'encrypted' in request.socket ? 'https' : 'http',
    host: request.headers.host,
    port: request.socket.localPort,
    requestId: request.id,
    trusted
  }, options.requestIdHeader)
}

function clientAddressOf (request: FastifyRequest): string {
  const address = request.socket.remoteAddress ?? ''
  return address.startsWith('::ffff:') ? address.slice(7) : address
}

function classify (error: Error): Error {
  let cause: unknown = error
  while (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code
    if (cause instanceof Error && 'statusCode' in cause && (cause as { code?: string }).code === 'FICUS_ERR_BODY_TOO_LARGE') return cause
    if (cause instanceof FicusError && cause.code === 'FICUS_ERR_REQUEST_CANCELLED') return cause
    if (code !== undefined && SLOW.has(code)) return LegacyErrors.FICUS_ERR_LEGACY_TIMEOUT(undefined, { cause: error })
    if (code !== undefined && UNREACHABLE.has(code)) return LegacyErrors.FICUS_ERR_LEGACY_UNAVAILABLE(undefined, { cause: error })
    if (cause.name === 'TimeoutError') return LegacyErrors.FICUS_ERR_LEGACY_TIMEOUT(undefined, { cause: error })
    cause = cause.cause
  }
  return LegacyErrors.FICUS_ERR_LEGACY_BAD_RESPONSE(undefined, { cause: error })
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
