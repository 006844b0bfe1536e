// The public edge, built without listening so tests can start it on port 0. For every request:
// canonical path -> school from the Host -> route -> flag decision -> new handler or legacy.
// Everything up to the decision is synchronous and from memory, and runs before the body is read.
import { randomUUID } from 'node:crypto'
import { METHODS, ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type HookHandlerDoneFunction } from 'fastify'
import legacyAdapter from '../legacy-adapter/index.ts'
import { LegacyRouter } from '../legacy-adapter/upstreams.ts'
import { markUpgrade, offeredProtocols, pendingUpgrade, Tunnels } from '../legacy-adapter/tunnel.ts'
import { decideBackend } from '../flags/decide-backend.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { FlagContext } from '../flags/flag-context.ts'
import { writeAccessLog } from '../metrics/access-log.ts'
import { FicusMetrics, ROUTE_NONE, ROUTE_UNMIGRATED } from '../metrics/registry.ts'
import { INTERNAL_HEADER, SafetyNet, type RouteGuard as SafetyGuard } from '../safety/safety-net.ts'
import type { MigratedRoute } from '../new-routes/route.ts'
import { HostResolver } from '../tenants/host.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import sessionsPlugin from '../sessions/plugin.ts'
import { AccessStage } from '../access/stage.ts'
import { ruleProblem } from '../access/rules.ts'
import type { SessionComponents } from '../sessions/config.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { TenantErrors } from '../tenants/errors.ts'
import { canonicalizeUrl } from './canonical-path.ts'
import type { Config } from './config.ts'
import { ProxyErrors } from './errors.ts'
import { sendError, toFicusError } from './error-reply.ts'
import { TrustedProxies } from './trusted-proxies.ts'
import { closesConnection, edgeRefusal, isEdgeRefusal, refuseConnect } from './strict-edge.ts'

export interface ProxyParts {
  readonly config: Config
  readonly registry: TenantRegistry
  readonly flags: FlagReader
  readonly routes: readonly MigratedRoute[]
  readonly logger: FastifyBaseLogger
  /** The shared session store; without it handlers have no `request.session`. */
  readonly sessions?: SessionComponents
  /** Shadow, fallback and breaker; built from `config.safety` when absent. */
  readonly safety?: SafetyNet
  /** Built with default settings when absent. */
  readonly metrics?: FicusMetrics
  /** While true, every response says `Connection: close` (the drain after SIGTERM). */
  readonly lifecycle?: { readonly draining: boolean }
  /** Open upgrade tunnels (closed by the shutdown); built from `config.tunnels` when absent. */
  readonly tunnels?: Tunnels
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The school this request is for; set before any handler runs. */
    tenant: Tenant
  }
  interface FastifyContextConfig {
    migratedRoute?: MigratedRoute
  }
}

// Set by rewriteUrl on the raw request when its path cannot be decided on; answered with 400.
const kPathProblem = Symbol('ficus.pathProblem')
type RawRequest = IncomingMessage & { [kPathProblem]?: string }

const REQUEST_ID_SYNTAX = /^[A-Za-z0-9._:-]{1,128}$/
// Legacy may speak WebDAV or anything else Node parses; CONNECT is for forward proxies only, and
// TRACE is routed only to be refused (see strict-edge.ts).
const ALL_METHODS = METHODS.filter((method) => method !== 'CONNECT')
// How late (at most) a headers or request timeout is noticed.
const MAX_TIMEOUT_CHECK_MS = 1_000
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'DELETE'])
const NOT_DRAINING = Object.freeze({ draining: false })

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
  const { config, registry, flags } = parts
  const hosts = new HostResolver(config.baseDomain)
  const trustedProxies = new TrustedProxies(config.trustedProxies)
  const servedBy = config.servedByHeader
  // Process metrics are main.ts's choice: a test or a bench building many apps needs none.
  const legacyRouter = legacyRouterOf(config)
  const tunnels = parts.tunnels ?? new Tunnels(config.tunnels)
  const metrics = parts.metrics ?? new FicusMetrics({ routes: parts.routes.map((route) => route.name), upstreams: legacyRouter.upstreams.map((upstream) => upstream.name), maxCohorts: config.metricsMaxCohorts, processMetrics: false })
  const safety = parts.safety ?? new SafetyNet({ config: config.safety, flags, killSwitchFlag: config.killSwitchFlag, events: metrics, logger: parts.logger })
  const lifecycle = parts.lifecycle ?? NOT_DRAINING
  const accessLog = config.accessLog

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
    genReqId (req) {
      const supplied = trustedProxies.trusts(req.socket.remoteAddress) ? req.headers[config.requestIdHeader] : undefined
      return typeof supplied === 'string' && REQUEST_ID_SYNTAX.test(supplied) ? supplied : randomUUID()
    },
    rewriteUrl (req) {
      const canonical = canonicalizeUrl(req.url ?? '')
      if (canonical.ok) return canonical.url
      ;(req as RawRequest)[kPathProblem] = canonical.reason
      return '/'
    },
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true },
    // Migrated routes get what the client sent or a 422 naming the field: ajv's default coercion
    // would turn `"3"` into 3 or `[1]` into 1 and store a type the client never sent.
    ajv: { customOptions: { coerceTypes: false } },
    exposeHeadRoutes: true
  })

  for (const method of ALL_METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: !BODYLESS_METHODS.has(method) })
  }
  app.decorateRequest('tenant', undefined as unknown as Tenant)
  refuseConnect(app.server)

  await app.register(legacyAdapter, {
    router: legacyRouter,
    shardOf: (request: FastifyRequest) => request.tenant?.legacy,
    tunnels,
    preserveHost: config.preserveHost,
    bodyLimitBytes: config.legacyBodyLimitBytes,
    requestIdHeader: config.requestIdHeader,
    servedByHeader: servedBy,
    trustsPeer: (request: FastifyRequest) => trustedProxies.trusts(request.socket.remoteAddress),
    allowedHeaders: new Set(config.legacyAllowHeaders),
    hostOnlyCookie: config.sessionCookieHostOnly ? config.sessions.cookieName : undefined,
    // The safety net's onSend hook copies legacy's body for a shadow comparison and guards a fallback.
    throughReply: (request: FastifyRequest) => request.ficusShadowing || request.ficusFallback !== 0
  })

  // Before the sessions plugin: its onSend hook must not run ahead of the handler deadline check.
  safety.install(app, (request, reply) => toLegacy(request, reply, request.tenant.id))
  app.addHook('onResponse', function observe (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const guard = request.ficusGuard
    const backend = request.ficusBackend
    const route = guard !== null ? FicusMetrics.FIRST_ROUTE + guard.index : backend === 'none' ? 0 : 1
    metrics.observe(route, backend, reply.statusCode, request.tenant?.cohorts[0], reply.elapsedTime / 1000)
    const upstream = request.legacyUpstream
    if (upstream !== undefined) metrics.observeUpstream(upstream.index, reply.statusCode, reply.elapsedTime / 1000)
    if (accessLog) writeAccessLog(request, reply, guard !== null ? guard.name : backend === 'none' ? ROUTE_NONE : ROUTE_UNMIGRATED, backend)
    done()
  })

  const bindings = parts.sessions?.bindings
  const access = new AccessStage(config.access)
  access.install(app)
  if (parts.sessions !== undefined) await app.register(sessionsPlugin, parts.sessions)

  // The session cookie reaches legacy only when it names a session of this school, or of none yet
  // (sessions/bindings.ts). Requests without the session cookie pass straight through.
  function toLegacy (request: FastifyRequest, reply: FastifyReply, tenantId: string | undefined): void {
    if (request.ficusBackend === 'none') request.ficusBackend = 'legacy'
    const cookie = request.headers.cookie
    const forLegacy = bindings === undefined ? cookie : bindings.legacyCookieHeader(cookie, tenantId)
    if (forLegacy === cookie) return forward(request, reply)
    if (!(forLegacy instanceof Promise)) return sendWithCookie(request, reply, forLegacy)
    forLegacy.then((header) => sendWithCookie(request, reply, header), (error: Error) => reply.send(error))
  }

  app.setErrorHandler((error, request, reply) => {
    safety.errorPage(request)
    const ficusError = toFicusError(error as Error)
    if (closesConnection(ficusError)) reply.header('connection', 'close')
    // A cancellation (client gone, deadline, shutdown) is logged where it fired, not as a failure.
    if (ficusError.statusCode >= 500 && !isEdgeRefusal(ficusError) && ficusError.code !== 'FICUS_ERR_REQUEST_CANCELLED') request.log.error({ err: error, code: ficusError.code }, 'request failed')
    return sendError(request, reply, ficusError)
  })

  app.addHook('onRequest', function dispatch (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const refusal = edgeRefusal(request.raw)
    if (refusal !== undefined) return done(refusal)
    const pathProblem = (request.raw as RawRequest)[kPathProblem]
    if (pathProblem !== undefined) return done(ProxyErrors.FICUS_ERR_PATH_INVALID(pathProblem))
    if (lifecycle.draining) reply.header('connection', 'close')
    // ficus's own shadow replays carry a marker no client can know.
    const internal = request.headers[INTERNAL_HEADER] !== undefined

    const host = hosts.resolve(request.headers.host)
    if (host.kind !== 'tenant') {
      // No school: only a session bound to none passes (toLegacy).
      if (host.kind === 'bare' && config.bareDomain === 'legacy') return toLegacy(request, reply, undefined)
      if (host.kind === 'malformed') return done(TenantErrors.FICUS_ERR_HOST_INVALID(host.reason))
      return done(TenantErrors.FICUS_ERR_TENANT_UNKNOWN())
    }
    const tenant = registry.get(host.tenantId)
    if (tenant === undefined) return done(TenantErrors.FICUS_ERR_TENANT_UNKNOWN())
    if (tenant.status !== 'active') {
      return done(tenant.status === 'maintenance' ? TenantErrors.FICUS_ERR_TENANT_MAINTENANCE() : TenantErrors.FICUS_ERR_TENANT_SUSPENDED())
    }
    request.tenant = tenant

    const route = request.routeOptions.config.migratedRoute
    if (route === undefined) return toLegacy(request, reply, tenant.id)
    const guard = request.routeOptions.config.routeGuard as SafetyGuard
    request.ficusGuard = guard
    if (internal && safety.isShadowReplay(request)) {
      safety.startShadowReplay(request, reply)
      return done()
    }
    const context: FlagContext = { tenantId: tenant.id, cohorts: tenant.cohorts, route: route.name, remoteAddress: request.ip }
    let backend
    try {
      backend = decideBackend(flags, route, context, config.killSwitchFlag)
      if (backend === 'legacy') safety.legacyChosen(request, guard, context)
    } catch (error) {
      return done(toFicusError(error as Error))
    }
    if (backend === 'legacy' || !safety.admit(request, reply, guard, tenant.id)) return toLegacy(request, reply, tenant.id)
    if (servedBy !== undefined) reply.header(servedBy, 'new')
    done()
  })

  // Only when something accepts upgrades: otherwise node serves an upgrade offer as a plain
  // request, which the strict edge refuses (or, for h2c alone, serves over HTTP/1.1).
  if (legacyRouter.upstreams.some((upstream) => upstream.upgrades.length > 0) || parts.routes.some((route) => route.upgrade !== undefined)) listenForUpgrades(app)

  // Everything no migrated route claims goes to legacy, whatever the method.
  app.route({ method: ALL_METHODS, url: '/*', handler: legacyOnly })
  app.route({ method: ALL_METHODS, url: '/', handler: legacyOnly })

  for (const route of parts.routes) {
    const problem = ruleProblem(route.access)
    if (problem !== undefined) throw new TypeError(`migrated route ${route.name}: ${problem}`)
    app.route({
      method: route.method as string | string[],
      url: route.url,
      schema: route.schema,
      config: { migratedRoute: route, routeGuard: safety.guard(route) },
      // Who may call it, before its body is validated and its handler runs (shadow runs too).
      preValidation: access.guard(route),
      preHandler: upgradeGate(route),
      handler: safety.wrapHandler(route.handler, route.fallbackToLegacy !== false)
    })
  }

  return app
}

function sendWithCookie (request: FastifyRequest, reply: FastifyReply, cookie: string | undefined): void {
  if (cookie === undefined) delete request.raw.headers.cookie
  else request.raw.headers.cookie = cookie
  forward(request, reply)
}

// An upgrade handed over by the upgrade listener is tunnelled; a bare offer of h2c is ignored.
function forward (request: FastifyRequest, reply: FastifyReply): void {
  const pending = pendingUpgrade(request.raw)
  if (pending !== undefined && offeredProtocols(request.headers.upgrade).length > 0) reply.tunnelToLegacy(pending)
  else reply.toLegacy()
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

/** The route's own upgrade hook, or a refusal: a migrated route takes upgrades only when it says so. */
function upgradeGate (route: MigratedRoute) {
  return function upgradeGate (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const pending = pendingUpgrade(request.raw)
    if (pending === undefined || offeredProtocols(request.headers.upgrade).length === 0) return done()
    if (route.upgrade === undefined) return done(ProxyErrors.FICUS_ERR_UPGRADE_UNSUPPORTED(`route ${route.name} does not accept upgrades`))
    reply.hijack()
    ;(reply.raw as ServerResponse).detachSocket(pending.socket as Socket)
    route.upgrade(request, pending.socket, pending.head)
  }
}

// Unreachable: the dispatch hook forwards every request of these routes before their handler.
async function legacyOnly (): Promise<never> {
  throw ProxyErrors.FICUS_ERR_INTERNAL('catch-all handler reached')
}
