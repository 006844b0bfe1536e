// The legacy lane: the request path's shortcut for the request nearly all traffic is on day one,
// a plain GET or HEAD that legacy answers. It runs before fastify builds a request and a reply,
// on Node's own request, and takes the stages' decisions with the stages' own rules, in their
// order: the strict edge and the canonical path (canonicalise), the school (school), the route
// from a router built from fastify's own routes with fastify's own options (route), the route's
// flag, kill switch and shadow flag (decide), the session cookie's binding (serve), then the
// forward and, once answered, the metrics and the access-log line (observe).
//
// The lane takes only what it can settle from memory and forward as it came. Everything else
// goes to fastify's routing untouched, where the stages decide it again: any refusal, a body, a
// method other than GET and HEAD, the bare domain, a route the flags send to its new handler or
// to a shadow comparison, flags not loaded, a session cookie not looked up yet, the drain. When
// legacy gives no answer, the request is handed to fastify with the error, which the serve stage
// answers with ficus's error page instead of forwarding again: never retried.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import { pathOf } from '../core/url.ts'
import { decideBackend } from '../flags/decide-backend.ts'
import type { FlagReader } from '../flags/flags.ts'
import type { PlainForwardFailure } from '../legacy-adapter/forwarder.ts'
import type { LegacyUpstream } from '../legacy-adapter/upstreams.ts'
import { ACCESS_LOG_MESSAGE, type AccessLogLine } from '../metrics/access-log.ts'
import { countedRouteIndex, countedRouteName, type FicusMetrics } from '../metrics/registry.ts'
import type { RouteGuard } from '../safety/safety-net.ts'
import type { SessionBindings } from '../sessions/bindings.ts'
import type { HostResolver } from '../tenants/host.ts'
import type { TenantRegistry } from '../tenants/registry.ts'
import type { Tenant } from '../tenants/tenant.ts'
import { canonicalizeUrl } from './canonical-path.ts'
import { edgeRefusal } from './strict-edge.ts'

/** fastify's router options, shared by fastify and the lane's router so that both match alike. */
export const ROUTER_OPTIONS = Object.freeze({ caseSensitive: false, ignoreTrailingSlash: true })

export interface LegacyLaneParts {
  readonly hosts: HostResolver
  readonly registry: TenantRegistry
  readonly flags: FlagReader
  readonly killSwitchFlag: string | undefined
  /** The session cookie rules for legacy; undefined without a session store. */
  readonly bindings: SessionBindings | undefined
  readonly metrics: FicusMetrics
  readonly accessLog: boolean
  readonly logger: FastifyBaseLogger
  readonly lifecycle: { readonly draining: boolean }
  readonly requestIdOf: (req: IncomingMessage) => string
}

// What a route of the lane's router carries: the migrated route's guard, or none (a catch-all).
interface LaneRoute { readonly guard: RouteGuard | undefined }

const kLaneFailure = Symbol('ficus.laneFailure')
const kLaneExchange = Symbol('ficus.laneExchange')

/** Legacy's failure on a request the lane forwarded, handed to fastify for its error page. */
export interface LaneFailure {
  readonly error: Error
  readonly upstream: LegacyUpstream
  /** The request id legacy was sent, kept by fastify's request. */
  readonly id: string
}

type LaneRequest = IncomingMessage & { [kLaneFailure]?: LaneFailure }
type LaneResponse = ServerResponse & { [kLaneExchange]?: LaneExchange }

/** The failure the lane handed this request over with, if it did. */
export function laneFailure (req: IncomingMessage): LaneFailure | undefined {
  return (req as LaneRequest)[kLaneFailure]
}

// What observe needs of a request the lane forwarded. One object per request, no closure.
class LaneExchange {
  readonly lane: LegacyLane
  readonly req: IncomingMessage
  /** The canonical path, without its query. */
  readonly path: string
  readonly id: string
  readonly tenant: Tenant
  readonly guard: RouteGuard | undefined
  readonly upstream: LegacyUpstream
  readonly startedAt: number

  constructor (lane: LegacyLane, req: IncomingMessage, path: string, id: string, tenant: Tenant, guard: RouteGuard | undefined, upstream: LegacyUpstream, startedAt: number) {
    this.lane = lane
    this.req = req
    this.path = path
    this.id = id
    this.tenant = tenant
    this.guard = guard
    this.upstream = upstream
    this.startedAt = startedAt
  }
}

export class LegacyLane {
  readonly #parts: LegacyLaneParts
  readonly #router = FindMyWay(ROUTER_OPTIONS)
  #routing: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  #forward: FastifyInstance['legacyPlain'] | undefined
  readonly #onFailure: PlainForwardFailure = (req, res, error) => { this.#handOverFailure(req, res, error) }

  constructor (parts: LegacyLaneParts) {
    this.#parts = parts
  }

  /**
   * Puts the lane in front of `app`'s routing: every route fastify registers from now on is
   * registered in the lane's router too (with the same options, so the two match alike), and
   * Node's requests reach the lane first. Requests injected in-process (shadow replays) never
   * take the lane.
   */
  install (app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      const store: LaneRoute = { guard: route.config?.routeGuard }
      try {
        this.#router.on(route.method as HTTPMethod | HTTPMethod[], route.url, noHandler, store)
      } catch (error) {
        // A HEAD route fastify adds for a GET where one is declared already: fastify ignores it too.
        if (!(error instanceof Error && error.message.includes('already declared'))) throw error
      }
    })
    const routing = app.routing
    this.#routing = routing
    this.#forward = app.legacyPlain
    const server = app.server
    server.removeListener('request', routing)
    // Were fastify's listener not the one removed, both would answer every request.
    if (server.listenerCount('request') !== 0) throw new Error('the legacy lane found a request listener other than fastify\'s routing')
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.take(req, res)) routing(req, res)
    })
  }

  /** Forwards `req` to legacy and returns true, or returns false (and does nothing) for fastify to route it. */
  take (req: IncomingMessage, res: ServerResponse): boolean {
    const parts = this.#parts
    const method = req.method
    if ((method !== 'GET' && method !== 'HEAD') || parts.lifecycle.draining || edgeRefusal(req) !== undefined) return false
    const canonical = canonicalizeUrl(req.url ?? '')
    if (!canonical.ok) return false
    const host = parts.hosts.resolve(req.headers.host)
    if (host.kind !== 'tenant') return false
    const tenant = parts.registry.get(host.tenantId)
    if (tenant === undefined || tenant.status !== 'active') return false
    const url = canonical.url
    const found = this.#router.find(method, url)
    if (found === null) return false
    const guard = (found.store as LaneRoute).guard
    if (guard !== undefined && !this.#legacyDecided(guard, tenant, req)) return false
    if (parts.bindings !== undefined) {
      const cookie = req.headers.cookie
      const forLegacy = parts.bindings.legacyCookieHeader(cookie, tenant.id)
      // Not looked up yet: the serve stage waits for the look-up (this one, shared), and answers its failure.
      if (forLegacy instanceof Promise) {
        forLegacy.catch(ignore)
        return false
      }
      if (forLegacy !== cookie) {
        if (forLegacy === undefined) delete req.headers.cookie
        else req.headers.cookie = forLegacy
      }
    }
    const id = parts.requestIdOf(req)
    const startedAt = performance.now()
    const upstream = (this.#forward as FastifyInstance['legacyPlain'])(req, res, url, tenant.legacy, id, this.#onFailure)
    if (upstream === undefined) return false
    ;(res as LaneResponse)[kLaneExchange] = new LaneExchange(this, req, pathOf(url), id, tenant, guard, upstream, startedAt)
    res.once('close', laneClosed)
    return true
  }

  // The decide stage's rule for a legacy-bound GET or HEAD: the route's flag (and kill switches)
  // say legacy and its shadow flag does not ask for a comparison. Flags not loaded: not decided.
  #legacyDecided (guard: RouteGuard, tenant: Tenant, req: IncomingMessage): boolean {
    const parts = this.#parts
    const context = { tenantId: tenant.id, cohorts: tenant.cohorts, route: guard.name, remoteAddress: req.socket.remoteAddress }
    try {
      return decideBackend(parts.flags, guard.route, context, parts.killSwitchFlag) === 'legacy' &&
        decideBackend(parts.flags, guard.shadowRoute, context, parts.killSwitchFlag) === 'legacy'
    } catch {
      return false
    }
  }

  // Legacy gave no answer: fastify routes the request, and its serve stage answers the failure.
  #handOverFailure (req: IncomingMessage, res: ServerResponse, error: Error): void {
    const exchange = (res as LaneResponse)[kLaneExchange] as LaneExchange
    res.removeListener('close', laneClosed)
    ;(res as LaneResponse)[kLaneExchange] = undefined
    ;(req as LaneRequest)[kLaneFailure] = { error, upstream: exchange.upstream, id: exchange.id }
    ;(this.#routing as (req: IncomingMessage, res: ServerResponse) => void)(req, res)
  }

  /** The observe stage's work for a request the lane forwarded: its metrics and its access-log line. */
  observe (exchange: LaneExchange, status: number): void {
    const parts = this.#parts
    const seconds = (performance.now() - exchange.startedAt) / 1000
    const guard = exchange.guard
    parts.metrics.observe(countedRouteIndex(guard, 'legacy'), 'legacy', status, exchange.tenant.cohorts[0], seconds)
    parts.metrics.observeUpstream(exchange.upstream.index, status, seconds)
    if (!parts.accessLog) return
    const line: AccessLogLine & { reqId: string } = {
      reqId: exchange.id,
      tenant: exchange.tenant.id,
      method: exchange.req.method as string,
      path: exchange.path,
      route: countedRouteName(guard, 'legacy'),
      backend: 'legacy',
      upstream: exchange.upstream.name,
      status,
      durationMs: Math.round(seconds * 100_000) / 100
    }
    parts.logger.info(line, ACCESS_LOG_MESSAGE)
  }
}

function laneClosed (this: ServerResponse): void {
  const exchange = (this as LaneResponse)[kLaneExchange]
  if (exchange === undefined) return
  ;(this as LaneResponse)[kLaneExchange] = undefined
  exchange.lane.observe(exchange, this.statusCode)
}

// The lane's router only classifies; fastify's runs the handlers.
function noHandler (): void {}

function ignore (): void {}
