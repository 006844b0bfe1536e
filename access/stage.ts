// The access stage of migrated routes: before the body is validated and before the handler runs
// (for real requests and shadow runs alike), it reads the signed-in user from the legacy's
// session, refuses who may not call the route, and checks CSRF on unsafe methods. A refusal
// answers at once: the handler never runs, so nothing is written and nothing is audited.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AccessRule, SignedInUser } from '../core/access-rule.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { Session } from '../sessions/session.ts'
import type { AccessConfig } from './config.ts'
import { CsrfTokens, type CsrfVerdict } from './csrf.ts'
import { AccessErrors } from './errors.ts'
import { describeAccess, effectiveAccess, permits } from './rules.ts'
import { userFromSession } from './session-user.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in user; set by the access stage (never null on a route that is not public). */
    user: SignedInUser | null
  }
  interface FastifyInstance {
    /** The legacy's sign-in and sign-out pages, for migrated pages to link to. */
    readonly accountPaths: { readonly loginPath: string, readonly logoutPath: string }
  }
}

// Flask-WTF's WTF_CSRF_METHODS, and its WTF_CSRF_HEADERS.
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const CSRF_HEADERS = ['x-csrftoken', 'x-csrf-token'] as const
const FORM_TYPE = 'application/x-www-form-urlencoded'

const CSRF_REASONS: Readonly<Record<Exclude<CsrfVerdict, 'ok'>, string>> = {
  missing: 'the CSRF token is missing',
  'no-session-token': 'the session holds no CSRF token',
  invalid: 'the CSRF token is invalid',
  expired: 'the CSRF token has expired',
  mismatch: 'the CSRF token belongs to another session'
}

/** What the stage shows of a route in /decisions. */
export interface RouteAccess {
  readonly access: string
  readonly csrf: boolean
}

export function routeAccess (route: MigratedRoute): RouteAccess {
  return { access: describeAccess(effectiveAccess(route)), csrf: route.csrf !== false }
}

export class AccessStage {
  readonly #config: AccessConfig
  readonly #tokens: CsrfTokens | undefined

  constructor (config: AccessConfig) {
    this.#config = config
    const secret = config.csrfSecret
    this.#tokens = secret === undefined ? undefined : new CsrfTokens({ secret, timeLimitSeconds: config.csrfTimeLimitSeconds })
  }

  /** Declares `request.user`, the account paths, and the form parser for `csrf_token` fields. */
  install (app: FastifyInstance): void {
    app.decorateRequest('user', null)
    app.decorate('accountPaths', Object.freeze({ loginPath: this.#config.loginPath, logoutPath: this.#config.logoutPath }))
    // Form posts (a legacy-rendered form posting to a migrated route) carry the token as a field.
    app.addContentTypeParser(FORM_TYPE, { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)))
    })
    if (this.#tokens === undefined) app.log.warn('CSRF_SECRET and SESSION_SECRET are not set: every POST, PUT, PATCH and DELETE to a migrated route is refused (FICUS_ERR_CSRF)')
  }

  /** The preValidation hook of one route: its rule, in force before anything else of it runs. */
  guard (route: MigratedRoute): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
    const rule: AccessRule = effectiveAccess(route)
    const csrf = route.csrf !== false
    const stage = this
    return async function access (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
      const unsafe = csrf && UNSAFE_METHODS.has(request.method)
      // A public route needs no one signed in, yet its page says who is, as the legacy's pages do;
      // a session store that cannot answer then leaves it anonymous rather than failing the page.
      const session = rule === 'public' && !unsafe ? await loadSession(request).catch((error: unknown) => { request.log.warn({ err: error }, 'public route served as anonymous: the session could not be read'); return null }) : await loadSession(request)
      const user = userFromSession(session, stage.#config.keys)
      request.user = user
      if (!permits(rule, user)) {
        if (user !== null) throw AccessErrors.FICUS_ERR_FORBIDDEN(`${route.name} needs ${describeAccess(rule)}`)
        // The reply is sent: returning it tells fastify to run nothing more of this route.
        if (isPageRequest(request)) return reply.redirect(`${stage.#config.loginPath}?next=${encodeURIComponent(request.url)}`, 302)
        throw AccessErrors.FICUS_ERR_NOT_SIGNED_IN()
      }
      if (unsafe) stage.#checkCsrf(request, session?.getString(stage.#config.csrfSessionKey))
      return undefined
    }
  }

  #checkCsrf (request: FastifyRequest, sessionToken: string | undefined): void {
    const originProblem = sameSiteProblem(request.headers.host, request.headers.origin, request.headers.referer)
    if (originProblem !== undefined) throw AccessErrors.FICUS_ERR_CSRF(originProblem)
    if (this.#tokens === undefined) throw AccessErrors.FICUS_ERR_CSRF('no CSRF secret is configured (CSRF_SECRET or SESSION_SECRET)')
    const verdict = this.#tokens.verify(tokenOf(request, this.#config.csrfSessionKey), sessionToken)
    if (verdict !== 'ok') throw AccessErrors.FICUS_ERR_CSRF(CSRF_REASONS[verdict])
  }
}

async function loadSession (request: FastifyRequest): Promise<Session | null> {
  // Without the sessions plugin there is no session, hence nobody signed in.
  const holder = request as unknown as { session?: FastifyRequest['session'] }
  return holder.session === undefined ? null : await holder.session.load()
}

/** A browser navigating (GET/HEAD asking for HTML): sent to sign in rather than told 401. */
function isPageRequest (request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false
  const accept = request.headers.accept ?? ''
  return accept.includes('text/html') && !accept.includes('json')
}

/**
 * The request must say it comes from a page of this very host: Origin (sent by browsers on
 * every unsafe request), or Referer when a privacy setting dropped Origin. Neither is refused.
 */
export function sameSiteProblem (hostHeader: string | undefined, origin: string | undefined, referer: string | undefined): string | undefined {
  const host = hostHeader?.toLowerCase()
  if (host === undefined || host === '') return 'the request has no Host'
  const source = origin ?? referer
  if (source === undefined) return 'the request has neither Origin nor Referer'
  let sourceHost: string
  try {
    const url = new URL(source)
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${origin === undefined ? 'Referer' : 'Origin'} is not a web page`
    sourceHost = url.host
  } catch {
    return `${origin === undefined ? 'Referer' : 'Origin'} is not a URL`
  }
  return sourceHost === host ? undefined : `${origin === undefined ? 'Referer' : 'Origin'} is another site`
}

function tokenOf (request: FastifyRequest, fieldName: string): string | undefined {
  for (const name of CSRF_HEADERS) {
    const value = request.headers[name]
    if (typeof value === 'string') return value
  }
  const body = request.body
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && Object.hasOwn(body, fieldName)) {
    const field = (body as Record<string, unknown>)[fieldName]
    if (typeof field === 'string') return field
  }
  return undefined
}
