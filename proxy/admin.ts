// The admin listener: health for the orchestrator and, in later stages, tools for engineers.
// It listens on its own address (loopback by default) and never on the public port.
import { timingSafeEqual } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import { CommonErrors } from '../core/errors.ts'
import type { FicusError } from '../errors/index.ts'
import { TenantErrors } from '../tenants/errors.ts'
import { AdminErrors } from './errors.ts'
import { sendError } from '../request-path/error-reply.ts'

export interface ReadinessCheck {
  readonly name: string
  /** Synchronous and cheap: the orchestrator polls it every few seconds. */
  readonly check: () => { readonly ready: boolean, readonly detail?: unknown }
}

export interface AdminParts {
  readonly token: string | undefined
  readonly checks: readonly ReadinessCheck[]
  readonly logger: FastifyBaseLogger
  /** Explains every migrated route for one school; undefined when the school is unknown. */
  readonly decisions?: (tenantId: string) => unknown
  /** Prometheus exposition for GET /metrics. */
  readonly metrics?: { readonly contentType: string, text (): Promise<string> }
  /** Shadow results and breakers; `route` narrows to one route (undefined result: no such route). */
  readonly safety?: {
    shadowSummary (route?: string): unknown[] | undefined
    mismatches (route?: string): unknown[] | undefined
    breakers (): unknown[]
  }
  /** The migration console, served under /console with a sign-in of its own. */
  readonly console?: (app: FastifyInstance) => Promise<void>
}

export class Readiness {
  #draining = false

  /** Called on SIGTERM: the load balancer must stop sending before the listener closes. */
  startDraining (): void {
    this.#draining = true
  }

  get draining (): boolean {
    return this.#draining
  }
}

export async function buildAdmin (parts: AdminParts, readiness: Readiness): Promise<FastifyInstance> {
  const admin = Fastify({ loggerInstance: parts.logger, logController: new LogController({ disableRequestLogging: true }) })
  const expected = parts.token === undefined ? undefined : Buffer.from(`Bearer ${parts.token}`)

  if (expected !== undefined) {
    admin.addHook('onRequest', async (request, reply) => {
      // The console signs its users in itself (the admin token is one of its passwords).
      const route = request.routeOptions.url
      if (parts.console !== undefined && route !== undefined && (route === '/console' || route.startsWith('/console/'))) return
      const given = Buffer.from(request.headers.authorization ?? '')
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        reply.header('www-authenticate', 'Bearer')
        return sendError(request, reply, AdminErrors.FICUS_ERR_ADMIN_UNAUTHORIZED())
      }
    })
  }

  admin.get('/livez', async () => ({ status: 'alive' }))

  admin.get('/readyz', async (_request, reply) => {
    const checks: Record<string, unknown> = {}
    let ready = !readiness.draining
    for (const { name, check } of parts.checks) {
      const result = check()
      checks[name] = result
      ready &&= result.ready
    }
    reply.code(ready ? 200 : 503)
    return { status: readiness.draining ? 'draining' : ready ? 'ready' : 'not ready', checks }
  })

  const decisions = parts.decisions
  if (decisions !== undefined) {
    admin.get<{ Querystring: { tenant?: string } }>('/decisions', async (request, reply) => {
      const tenantId = request.query.tenant
      if (tenantId === undefined || tenantId === '') {
        return refuse(reply, CommonErrors.FICUS_ERR_VALIDATION('the tenant query parameter is required, e.g. /decisions?tenant=school-a', { statusCode: 400 }))
      }
      const result = decisions(tenantId.toLowerCase())
      if (result === undefined) return refuse(reply, TenantErrors.FICUS_ERR_TENANT_UNKNOWN(`"${tenantId}" is not in the registry`))
      return result
    })
  }

  const metrics = parts.metrics
  if (metrics !== undefined) {
    admin.get('/metrics', async (_request, reply) => {
      reply.type(metrics.contentType)
      return await metrics.text()
    })
  }

  const safety = parts.safety
  if (safety !== undefined) {
    const unknownRoute = (reply: FastifyReply, route: string): FastifyReply => refuse(reply, CommonErrors.FICUS_ERR_VALIDATION(`no migrated route named "${route}"`, { statusCode: 404 }))
    admin.get<{ Querystring: { route?: string } }>('/shadow', async (request, reply) => {
      const summary = safety.shadowSummary(request.query.route)
      if (summary === undefined) return unknownRoute(reply, request.query.route ?? '')
      return { routes: summary }
    })
    admin.get<{ Querystring: { route?: string } }>('/shadow/mismatches', async (request, reply) => {
      const mismatches = safety.mismatches(request.query.route)
      if (mismatches === undefined) return unknownRoute(reply, request.query.route ?? '')
      return { routes: mismatches }
    })
    admin.get('/breakers', async () => ({ notClosed: safety.breakers() }))
  }

  if (parts.console !== undefined) await admin.register(parts.console)

  return admin
}

/** The admin API answers scripts: its refusals are JSON whatever the client accepts. */
function refuse (reply: FastifyReply, error: FicusError): FastifyReply {
  return reply.code(error.statusCode).send({ error: { code: error.code, message: error.message } })
}
