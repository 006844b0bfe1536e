// The console's HTTP side on the admin listener, under /console: sign-in, the pages, and the
// forms that preview and save moves. Every POST but sign-in needs the session's CSRF token and,
// when the browser sends one, an Origin of this listener; pages are never cached or framed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CommonErrors } from '../core/errors.ts'
import { FicusError } from '../errors/index.ts'
import { ConsoleErrors } from './errors.ts'
import { clearedCookie, csrfMatches, sessionCookie, type ConsoleAuth, type ConsoleSession } from './auth.ts'
import type { Action, MigrationConsole, Move, Preview } from './migration.ts'
import { errorPage, signInPage, decisionInWords, type PageUser } from './pages.ts'
import { schoolRow } from './matrix.ts'
import type { Change } from './history.ts'
import { explainDecision } from '../flags/decide-backend.ts'
import type { Flags } from '../flags/flags.ts'

const ACTIONS: readonly Action[] = ['new', 'legacy', 'shadow-on', 'shadow-off', 'kill', 'release']
/** Always allowed and saved in one click, without a preview step. */
const ONE_CLICK: readonly Action[] = ['legacy', 'shadow-off', 'kill']

type Form = Record<string, string>

export interface ConsolePluginOptions {
  readonly migration: MigrationConsole
  readonly auth: ConsoleAuth
  readonly flags: Flags
  readonly killSwitchFlag: string | undefined
  /** Sign-in with the admin token only (no CONSOLE_USERS): the user field is prefilled. */
  readonly adminOnly: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: ConsoleSession | null
  }
}

export function consolePlugin (options: ConsolePluginOptions) {
  const { migration, auth } = options
  return async function console (app: FastifyInstance): Promise<void> {
    app.decorateRequest('consoleSession', null)
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 256 * 1024 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)))
    })
    app.addHook('onRequest', async (request, reply) => {
      reply.header('cache-control', 'no-store')
      reply.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
      reply.header('x-frame-options', 'DENY')
      // same-origin, not no-referrer: with no-referrer, browsers send `Origin: null` on form posts.
      reply.header('referrer-policy', 'same-origin')
      reply.header('x-content-type-options', 'nosniff')
      request.consoleSession = auth.session(request.headers.cookie) ?? null
      const path = request.url.split('?')[0]
      if (path === '/console/sign-in') return
      if (request.consoleSession === null) {
        if (request.method === 'GET' || request.method === 'HEAD') return reply.code(303).header('location', '/console/sign-in').send()
        return refuse(reply, ConsoleErrors.FICUS_ERR_CONSOLE_SIGN_IN(), undefined, '/console/sign-in')
      }
    })
    app.addHook('preHandler', async (request, reply) => {
      if (request.method !== 'POST') return
      const origin = request.headers.origin
      const sameOrigin = origin === undefined || origin === `http://${request.headers.host ?? ''}` || origin === `https://${request.headers.host ?? ''}`
      // Sign-in has no session yet: only the origin is checked (SameSite=Strict does the rest).
      if (request.url === '/console/sign-in') {
        if (!sameOrigin) return refuse(reply, ConsoleErrors.FICUS_ERR_CONSOLE_CSRF())
        return
      }
      const session = request.consoleSession as ConsoleSession
      if (!sameOrigin || !csrfMatches(session, (request.body as Form | undefined)?.csrf)) {
        return refuse(reply, ConsoleErrors.FICUS_ERR_CONSOLE_CSRF(), pageUser(session))
      }
    })
    app.setErrorHandler((error, request, reply) => {
      const user = request.consoleSession === null ? undefined : pageUser(request.consoleSession)
      if (error instanceof FicusError) return refuse(reply, error, user)
      const status = (error as { statusCode?: number }).statusCode
      if (typeof status === 'number' && status >= 400 && status < 500) return refuse(reply, CommonErrors.FICUS_ERR_VALIDATION('the request was not understood', { statusCode: status, cause: error }), user)
      request.log.error({ err: error }, 'console request failed')
      return refuse(reply, CommonErrors.FICUS_ERR_INTERNAL('nothing was saved unless the history says so', { cause: error }), user)
    })

    app.get('/console/sign-in', async (request, reply) => {
      if (request.consoleSession !== null) return reply.code(303).header('location', '/console').send()
      return html(reply, 200, signInPage(undefined, options.adminOnly))
    })
    app.post<{ Body: Form }>('/console/sign-in', async (request, reply) => {
      const id = await auth.signIn(String(request.body?.user ?? ''), String(request.body?.password ?? ''))
      if (id === undefined) {
        request.log.warn({ user: String(request.body?.user ?? '').slice(0, 64) }, 'console sign-in refused')
        return html(reply, 401, signInPage('That user and password do not match.', options.adminOnly))
      }
      request.log.info({ user: request.body.user }, 'console sign-in')
      return reply.code(303).header('set-cookie', sessionCookie(id)).header('location', '/console').send()
    })
    app.post('/console/sign-out', async (request, reply) => {
      auth.signOut(request.headers.cookie)
      return reply.code(303).header('set-cookie', clearedCookie()).header('location', '/console/sign-in').send()
    })

    app.get<{ Querystring: { q?: string, cohort?: string, page?: string } }>('/console', async (request, reply) => {
      const user = pageUser(request.consoleSession as ConsoleSession)
      return html(reply, 200, await migration.pages.matrix({ user, freeze: migration.freezeNow(), query: request.query }))
    })

    app.get<{ Querystring: { route?: string, school?: string, saved?: string } }>('/console/cell', async (request, reply) => {
      const route = migration.route(request.query.route ?? '')
      const school = migration.school((request.query.school ?? '').toLowerCase())
      const user = pageUser(request.consoleSession as ConsoleSession)
      if (route === undefined || school === undefined) return refuse(reply, CommonErrors.FICUS_ERR_VALIDATION('no such route or school', { statusCode: 404 }), user)
      const cell = await migration.cell(route, school)
      return html(reply, 200, await migration.pages.page('cell', { user, freeze: migration.freezeNow(), route: migration.plainRoute(route), school: schoolRow(school), ...cell, saved: await saved(migration, request.query.saved) }))
    })

    app.get<{ Querystring: { route?: string, saved?: string } }>('/console/route', async (request, reply) => {
      const route = migration.route(request.query.route ?? '')
      const user = pageUser(request.consoleSession as ConsoleSession)
      if (route === undefined) return refuse(reply, CommonErrors.FICUS_ERR_VALIDATION('no such route', { statusCode: 404 }), user)
      return html(reply, 200, await migration.pages.page('route', {
        user, freeze: migration.freezeNow(), route: migration.plainRoute(route), cohorts: [...migration.cohorts().keys()], history: await migration.history({ route: route.name }),
        saved: await saved(migration, request.query.saved), hasShadow: true
      }))
    })

    app.get<{ Querystring: { id?: string } }>('/console/school', async (request, reply) => {
      const school = migration.school((request.query.id ?? '').toLowerCase())
      const user = pageUser(request.consoleSession as ConsoleSession)
      if (school === undefined) return refuse(reply, CommonErrors.FICUS_ERR_VALIDATION('no such school', { statusCode: 404 }), user)
      const rows = migration.routes.map((route) => ({
        route: migration.plainRoute(route),
        side: migration.side(route, school),
        reason: decisionInWords(explainDecision(options.flags, route, { tenantId: school.id, cohorts: school.cohorts, route: route.name }, options.killSwitchFlag))
      }))
      return html(reply, 200, await migration.pages.page('school', { user, freeze: migration.freezeNow(), school: schoolRow(school), rows, history: await migration.history({ school: school.id }) }))
    })

    app.get<{ Querystring: { saved?: string } }>('/console/history', async (request, reply) => {
      const user = pageUser(request.consoleSession as ConsoleSession)
      return html(reply, 200, await migration.pages.page('history', { user, freeze: migration.freezeNow(), changes: await migration.history({}), saved: await saved(migration, request.query.saved) }))
    })

    app.post<{ Body: Form }>('/console/preview', async (request, reply) => {
      const user = pageUser(request.consoleSession as ConsoleSession)
      const move = readMove(request.body)
      const preview = await migration.preview(move)
      return html(reply, 200, await migration.pages.page('preview', { user, preview, fields: moveForm(request.body), back: backTo(move) }))
    })

    app.post<{ Body: Form }>('/console/revert', async (request, reply) => {
      const user = pageUser(request.consoleSession as ConsoleSession)
      const { change, preview } = await revertPreview(migration, request.body.id)
      return html(reply, 200, await migration.pages.page('preview', { user, preview, fields: { revert: change.id }, back: '/console/history' }))
    })

    app.post<{ Body: Form }>('/console/schedule', async (request, reply) => {
      const session = request.consoleSession as ConsoleSession
      const preview = await migration.preview(readMove(request.body))
      if (request.body.version !== preview.version) throw ConsoleErrors.FICUS_ERR_CONSOLE_STALE(`${preview.flag} changed since the preview was shown`)
      // datetime-local sends no zone: the form says UTC.
      const at = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(request.body.at ?? '') ? new Date(`${request.body.at}Z`) : new Date(Number.NaN)
      const added = await migration.scheduleMove(preview, session.user, at, request.body.overrideReason)
      request.log.info({ user: session.user, scheduled: added.id, route: added.route, dueAt: added.dueAt }, 'console change scheduled')
      return reply.code(303).header('location', `/console/scheduled?added=${encodeURIComponent(added.id)}`).send()
    })

    app.get<{ Querystring: { added?: string } }>('/console/scheduled', async (request, reply) => {
      const user = pageUser(request.consoleSession as ConsoleSession)
      const changes = await migration.scheduled()
      return html(reply, 200, await migration.pages.page('scheduled', { user, freeze: migration.freezeNow(), changes, added: changes.find((c) => c.id === request.query.added) }))
    })

    app.post<{ Body: Form }>('/console/scheduled/cancel', async (request, reply) => {
      await migration.cancelScheduled(request.body.id ?? '')
      return reply.code(303).header('location', '/console/scheduled').send()
    })

    app.post<{ Body: Form }>('/console/apply', async (request, reply) => {
      const session = request.consoleSession as ConsoleSession
      const form = request.body
      let preview: Preview
      let revertOf: string | undefined
      if (form.revert !== undefined) {
        const reverted = await revertPreview(migration, form.revert)
        preview = reverted.preview
        revertOf = reverted.change.id
      } else {
        preview = await migration.preview(readMove(form))
      }
      const version = form.version
      if (version === undefined || version === '') {
        // One click: only what moves schools away from new, which is always allowed.
        if (revertOf !== undefined || !ONE_CLICK.includes(preview.move.action)) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('look at the preview before saving this move')
      } else if (version !== preview.version) {
        throw ConsoleErrors.FICUS_ERR_CONSOLE_STALE(`${preview.flag} changed since the preview was shown`)
      }
      if (preview.unchanged) return reply.code(303).header('location', backTo(preview.move)).send()
      const change = await migration.save(preview, session.user, form.overrideReason, revertOf === undefined ? {} : { revertOf })
      request.log.info({ user: session.user, route: change.route, flag: change.flag, what: change.what, schools: change.schools.length, override: change.overrideReason !== undefined }, 'console change saved')
      return reply.code(303).header('location', `${revertOf === undefined ? backTo(preview.move) : '/console/history?'}${revertOf === undefined ? '&' : ''}saved=${encodeURIComponent(change.id)}`).send()
    })
  }
}

/** What a page shows of a school: never its database URL. */


async function revertPreview (migration: MigrationConsole, id: string | undefined): Promise<{ change: Change, preview: Preview }> {
  const change = id === undefined ? undefined : await migration.change(id)
  if (change === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('no such change in the history')
  const route = migration.route(change.route)
  if (route === undefined) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE(`the route ${change.route} is no longer migrated`)
  return { change, preview: await migration.previewRevert(change, route) }
}

async function saved (migration: MigrationConsole, id: string | undefined): Promise<Change | undefined> {
  return id === undefined || id === '' ? undefined : await migration.change(id)
}

function readMove (form: Form): Move {
  const action = form.action as Action
  if (!ACTIONS.includes(action)) throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('unknown action')
  const route = form.route ?? ''
  if (action === 'kill' || action === 'release') return { route, action }
  switch (form.target) {
    case 'cohort': return { route, action, target: { kind: 'cohort', cohort: form.cohort ?? '' } }
    case 'percentage': return { route, action, target: { kind: 'percentage', percent: Number(form.percent) } }
    case 'schools': return { route, action, target: { kind: 'schools', ids: (form.schools ?? '').split(/[\s,]+/).map((id) => id.trim().toLowerCase()).filter((id) => id !== '') } }
    default: throw ConsoleErrors.FICUS_ERR_CONSOLE_BAD_MOVE('say which schools: a list, a cohort or a percentage')
  }
}

function moveForm (form: Form): Form {
  const fields: Form = {}
  for (const name of ['route', 'action', 'target', 'schools', 'cohort', 'percent']) if (form[name] !== undefined) fields[name] = form[name]
  return fields
}

function backTo (move: Move): string {
  const target = move.target
  if (target?.kind === 'schools' && target.ids.length === 1) return `/console/cell?route=${encodeURIComponent(move.route)}&school=${encodeURIComponent(target.ids[0] as string)}`
  return `/console/route?route=${encodeURIComponent(move.route)}`
}

function pageUser (session: ConsoleSession): PageUser {
  return { user: session.user, csrf: session.csrf }
}

function html (reply: FastifyReply, status: number, body: string | Buffer): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(body)
}

/** The console's error page for `error`, with its status, message and code. */
function refuse (reply: FastifyReply, error: FicusError, user?: PageUser, back?: string): FastifyReply {
  return html(reply, error.statusCode, errorPage(error, user, back))
}

export type { FastifyRequest }
