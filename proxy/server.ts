// The public edge's fastify instance, built without listening: its HTTP settings, the legacy
// adapter, the request path (request-path/: every request's stages, in order), the sessions
// plugin, the upgrade listener and the routes. proxy/create-ficus.ts is its only caller.
import { METHODS, ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import legacyAdapter from '../legacy-adapter/index.ts'
import { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import { markUpgrade, Tunnels } from '../legacy-adapter/tunnel.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { FicusMetrics } from '../metrics/registry.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import type { MigratedRoute } from '../core/route.ts'
import { FALLBACK_NONE } from '../request-path/exchange.ts'
import { HostResolver } from '../tenants/host.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import sessionsPlugin from '../sessions/plugin.ts'
import { AccessStage } from '../access/stage.ts'
import { ruleProblem } from '../access/rules.ts'
import type { SessionComponents } from '../sessions/config.ts'
import { RequestPath, rewriteUrl } from '../request-path/index.ts'
import { laneFailure, LegacyLane, ROUTER_OPTIONS } from '../request-path/legacy-lane.ts'
import type { Config } from './config.ts'
import { TrustedProxies } from './trusted-proxies.ts'
import { REQUEST_ID_SYNTAX, RequestIds } from './request-id.ts'
import { refuseConnect } from '../request-path/strict-edge.ts'

export interface ProxyParts {
  readonly config: Config
  readonly registry: TenantRegistry
  readonly flags: FlagReader
  readonly routes: readonly MigratedRoute[]
  readonly logger: FastifyBaseLogger
  /** The shared session store; without it handlers have no `request.session`. */
  readonly sessions?: SessionComponents
  /** Guards, breakers, shadow runner and running handlers. */
  readonly safety: SafetyNet
  readonly metrics: FicusMetrics
  /** While true, every response says `Connection: close` (the drain after SIGTERM). */
  readonly lifecycle: { readonly draining: boolean }
  /** Open upgrade tunnels (closed by the shutdown). */
  readonly tunnels: Tunnels
  readonly legacyRouter: LegacyRouter
  /** Plain legacy-bound GETs and HEADs forwarded before fastify's routing (request-path/legacy-lane.ts); default on. */
  readonly legacyLane?: boolean
}

// Legacy may speak WebDAV or anything else Node parses; CONNECT is for forward proxies only, and
// TRACE is routed only to be refused (see strict-edge.ts).
const ALL_METHODS = METHODS.filter((method) => method !== 'CONNECT')
// How late (at most) a headers or request timeout is noticed.
const MAX_TIMEOUT_CHECK_MS = 1_000
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'DELETE'])

/** The legacy routing table of a configuration: LEGACY_UPSTREAMS, or the one LEGACY_URL. */
export function legacyRouterOf (config: Config): LegacyRouter {
  if (config.legacyTable !== undefined) return new LegacyRouter(config.legacyTable)
  return LegacyRouter.single(config.legacyUrl ?? `http://127.0.0.1:${config.demoLegacyPort}`, {
    timeoutMs: config.legacyTimeoutMs,
    connections: config.legacyConnections,
    keepAliveMs: config.legacyKeepAliveMs
  }, config.legacyUpgrades)
}

export async function buildProxy (parts: ProxyParts): Promise<FastifyInstance> {
  const { config, safety, legacyRouter } = parts
  const trustedProxies = new TrustedProxies(config.trustedProxies)
  const requestIds = new RequestIds()
  const requestIdOf = (req: IncomingMessage): string => {
    const supplied = trustedProxies.trusts(req.socket.remoteAddress) ? req.headers[config.requestIdHeader] : undefined
    return typeof supplied === 'string' && REQUEST_ID_SYNTAX.test(supplied) ? supplied : requestIds.next()
  }
  const hosts = new HostResolver(config.baseDomain)
  const path = new RequestPath({
    hosts,
    registry: parts.registry,
    bareDomainToLegacy: config.bareDomain === 'legacy',
    flags: parts.flags,
    killSwitchFlag: config.killSwitchFlag,
    safety,
    metrics: parts.metrics,
    legacyRouter,
    bindings: parts.sessions?.bindings,
    servedByHeader: config.servedByHeader,
    accessLog: config.accessLog,
    lifecycle: parts.lifecycle
  })

  const app = Fastify({
    loggerInstance: parts.logger,
    // The access log line is written once, by the metrics stage, not twice per request by fastify.
    logController: new LogController({ disableRequestLogging: true }),
    http: {
      // A repeated Host arrives joined ("a, b") instead of silently keeping the first one.
      joinDuplicateHeaders: true,
      maxHeaderSize: config.maxHeaderBytes,
      headersTimeout: config.headersTimeoutMs,
      // Node enforces headersTimeout and requestTimeout only when it sweeps its connections,
      // every 30 s by default: a slow client would hold its socket well past either limit.
      connectionsCheckingInterval: Math.max(1, Math.min(MAX_TIMEOUT_CHECK_MS, Math.ceil(config.headersTimeoutMs / 2)))
    },
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionTimeout: config.clientIdleTimeoutMs,
    bodyLimit: config.bodyLimitBytes,
    requestIdHeader: false,
    // Requests that reach a closing server on a connection it already had are served (with
    // `Connection: close`), not refused: the drain must not fail what the balancer sent late.
    return503OnClosing: false,
    // A request the legacy lane handed over keeps the id legacy was sent.
    genReqId: (req) => laneFailure(req)?.id ?? requestIdOf(req),
    rewriteUrl,
    routerOptions: { ...ROUTER_OPTIONS },
    // Migrated routes get what the client sent or a 422 naming the field: ajv's default coercion
    // would turn `"3"` into 3 or `[1]` into 1 and store a type the client never sent.
    ajv: { customOptions: { coerceTypes: false } },
    exposeHeadRoutes: true
  })

  for (const method of ALL_METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: !BODYLESS_METHODS.has(method) })
  }
  refuseConnect(app.server)

  await app.register(legacyAdapter, {
    router: legacyRouter,
    shardOf: (request: FastifyRequest) => request.exchange.tenant?.legacy,
    tunnels: parts.tunnels,
    preserveHost: config.preserveHost,
    bodyLimitBytes: config.legacyBodyLimitBytes,
    requestIdHeader: config.requestIdHeader,
    servedByHeader: config.servedByHeader,
    trustsPeer: (remoteAddress: string | undefined) => trustedProxies.trusts(remoteAddress),
    allowedHeaders: new Set(config.legacyAllowHeaders),
    hostOnlyCookie: config.sessionCookieHostOnly ? config.sessions.cookieName : undefined,
    // The shadow stage copies legacy's body and the fall-back stage guards a fallback, both in onSend.
    throughReply: (request: FastifyRequest) => request.exchange.shadowing || request.exchange.fallback !== FALLBACK_NONE
  })

  // Before any route: the lane's router learns every route fastify's does.
  if (parts.legacyLane !== false) {
    new LegacyLane({
      hosts,
      registry: parts.registry,
      flags: parts.flags,
      killSwitchFlag: config.killSwitchFlag,
      bindings: parts.sessions?.bindings,
      metrics: parts.metrics,
      accessLog: config.accessLog,
      logger: parts.logger,
      lifecycle: parts.lifecycle,
      requestIdOf
    }).install(app)
  }
  // Before the sessions plugin: its onSend hook must run after the path's (the fallback's).
  path.install(app)
  const access = new AccessStage(config.access)
  access.install(app)
  if (parts.sessions !== undefined) await app.register(sessionsPlugin, parts.sessions)

  // Only when something accepts upgrades: otherwise node serves an upgrade offer as a plain
  // request, which the strict edge refuses (or, for h2c alone, serves over HTTP/1.1).
  if (legacyRouter.upstreams.some((upstream) => upstream.upgrades.length > 0) || parts.routes.some((route) => route.upgrade !== undefined)) listenForUpgrades(app)

  // Everything no migrated route claims goes to legacy, whatever the method.
  app.route({ method: ALL_METHODS, url: '/*', handler: path.legacyOnly })
  app.route({ method: ALL_METHODS, url: '/', handler: path.legacyOnly })

  for (const route of parts.routes) {
    const problem = ruleProblem(route.access)
    if (problem !== undefined) throw new TypeError(`migrated route ${route.name}: ${problem}`)
    app.route({
      method: route.method as string | string[],
      url: route.url,
      schema: route.schema,
      config: { routeGuard: safety.guard(route) },
      // Who may call it, before its body is validated and its handler runs (shadow runs too).
      preValidation: access.guard(route),
      preHandler: path.upgradeGateOf(route),
      handler: path.handlerOf(route)
    })
  }

  return app
}

/**
 * Upgrade requests (WebSocket) take the same way as any request: node hands them to the
 * `upgrade` listener with the socket, which is given a response of its own and routed through
 * fastify. Refusals are answered on it (and the socket closed); a tunnel or a route accepting
 * upgrades takes the socket over.
 */
function listenForUpgrades (app: FastifyInstance): void {
  app.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    markUpgrade(req, { socket, head })
    socket.on('error', () => socket.destroy())
    const res = new ServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket)
    res.once('finish', () => {
      res.detachSocket(socket)
      socket.end()
    })
    app.routing(req, res)
  })
}
