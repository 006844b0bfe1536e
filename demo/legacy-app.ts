// The embedded stand-in for the legacy school-management app, so `npm start` shows a real
// switch with nothing else installed: server-rendered pages in the old look, its own port, its
// own sign-in. ficus forwards to it exactly as it would to the real legacy app.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { escapeHtml } from '../html/escape.ts'
import { MemorySessionStore } from '../sessions/memory-store.ts'
import { jsonCodec } from '../sessions/codecs.ts'
import { CsrfTokens } from '../access/csrf.ts'

export interface DemoLegacyApp {
  readonly server: Server
  readonly url: string
  close (): Promise<void>
}

const SESSION_COOKIE = 'session'
const SESSION_TTL_MS = 8 * 3_600_000
const CSRF_KEY = 'csrf_token'

/** The demo's users: a teacher and an office clerk, with the roles migrated routes check. */
const DEMO_USERS: Readonly<Record<string, readonly string[]>> = { teacher: ['teacher'], office: ['office'] }
/** Pages only these roles may see, as on the real legacy. */
const PAGE_ROLES: Readonly<Record<string, readonly string[]>> = { '/attendance': ['teacher'] }

/**
 * `sessions` is the in-process store ficus reads too (the embedded default), so a sign-in here
 * is seen by migrated routes such as /me: the same record, in the JSON format, naming its school
 * under `tenant` as a real legacy app's session would, with the user's `roles` and a Flask-WTF-style
 * `csrf_token` whose signed form (with `csrfSecret`, the secret ficus checks with) each page carries.
 */
export async function startDemoLegacyApp (port: number, host = '127.0.0.1', sessions = new MemorySessionStore(), csrfSecret?: string): Promise<DemoLegacyApp> {
  const csrf = csrfSecret === undefined ? undefined : new CsrfTokens({ secret: csrfSecret, timeLimitSeconds: 3600 })

  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { if (body.length < 65_536) body += chunk })
    req.on('end', () => {
      route(req, res, body).catch(() => send(res, 500, legacyPage('', 'Error', '<p>Something went wrong.</p>', undefined)))
    })
  })

  async function route (req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://legacy.invalid')
    const school = (req.headers.host ?? '').split('.')[0] ?? ''
    const sessionId = cookieValue(req.headers.cookie, SESSION_COOKIE)
    const bytes = sessionId === undefined ? undefined : await sessions.get(sessionId)
    const session = bytes === undefined ? undefined : jsonCodec.decode(bytes)
    const user = session?.tenant === school && typeof session.user === 'string' ? session.user : undefined
    const roles = user !== undefined && Array.isArray(session?.roles) ? session.roles : []

    if ((url.pathname === '/login' || url.pathname === '/sign-in') && req.method === 'POST') {
      const form = new URLSearchParams(body)
      const name = form.get('user') ?? 'teacher'
      const next = form.get('next') ?? '/'
      const id = sessions.create(jsonCodec.encode({ user: name, roles: [...(DEMO_USERS[name] ?? [])], tenant: school, [CSRF_KEY]: CsrfTokens.sessionValue() }), SESSION_TTL_MS)
      // Only a path on this site: never an open redirect.
      res.writeHead(303, { location: next.startsWith('/') && !next.startsWith('//') ? next : '/', 'set-cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax` })
      return void res.end()
    }
    if (url.pathname === '/login' || url.pathname === '/sign-in') {
      const next = url.searchParams.get('next') ?? '/'
      const options = Object.keys(DEMO_USERS).map((name) => `<option value="${name}">${name} (${DEMO_USERS[name]?.join(', ')})</option>`).join('')
      return send(res, 200, legacyPage(school, 'Sign in', `<form method="post" action="/login"><input type="hidden" name="next" value="${escapeHtml(next)}"><label>User <select name="user">${options}</select></label> <input type="submit" value="Sign in"></form>`, user))
    }
    const needs = PAGE_ROLES[url.pathname]
    if (needs !== undefined && user === undefined) {
      res.writeHead(302, { location: `/login?next=${encodeURIComponent(url.pathname + url.search)}` })
      return void res.end()
    }
    if (needs !== undefined && !needs.some((role) => roles.includes(role))) {
      return send(res, 403, legacyPage(school, 'Not allowed', `<p>This page is for: ${escapeHtml(needs.join(', '))}.</p>`, user))
    }
    if (url.pathname === '/logout' || url.pathname === '/sign-out') {
      if (sessionId !== undefined) sessions.delete(sessionId)
      res.writeHead(303, { location: '/', 'set-cookie': `${SESSION_COOKIE}=; Path=/; Max-Age=0` })
      return void res.end()
    }
    const content = PAGES[url.pathname]
    if (content === undefined) return send(res, 404, legacyPage(school, 'Not found', '<p>There is no such page.</p>', user))
    const preferences = session?.preferences
    const extra = user !== undefined && preferences !== undefined ? `<p><small>Your preferences: ${escapeHtml(JSON.stringify(preferences))}</small></p>` : ''
    const token = csrf !== undefined && typeof session?.[CSRF_KEY] === 'string' ? csrf.sign(session[CSRF_KEY]) : undefined
    send(res, 200, legacyPage(school, content.title, content.body + extra, user, token))
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  const boundPort = typeof address === 'object' && address !== null ? address.port : port
  return {
    server,
    url: `http://${host}:${boundPort}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

const PAGES: Record<string, { title: string, body: string }> = {
  '/': { title: 'Home', body: '<p>Welcome to the school office.</p>' },
  '/attendance': {
    title: 'Attendance',
    body: '<table border="1" cellpadding="4"><tr><th>Class</th><th>Register</th></tr><tr><td>3B</td><td>open</td></tr><tr><td>4A</td><td>open</td></tr></table>'
  },
  '/timetable': {
    title: 'Timetable',
    body: '<table border="1" cellpadding="4"><tr><th>Time</th><th>Lesson</th></tr><tr><td>09:00</td><td>Maths</td></tr><tr><td>10:00</td><td>English</td></tr></table>'
  },
  '/reports': { title: 'Reports', body: '<p>End-of-term reports are generated overnight.</p>' }
}

function legacyPage (school: string, title: string, body: string, user: string | undefined, csrfToken?: string): string {
  const who = user === undefined ? '<a href="/login">Sign in</a>' : `Signed in as ${escapeHtml(user)} &middot; <a href="/logout">Sign out</a>`
  // Flask-WTF's usual hand-over to scripts: they send it back in X-CSRFToken.
  const meta = csrfToken === undefined ? '' : `<meta name="csrf-token" content="${escapeHtml(csrfToken)}">`
  return `<html><head><title>${escapeHtml(title)}</title>${meta}</head>
<body bgcolor="#eeeeee" style="font-family: Times New Roman, serif">
<table width="100%" bgcolor="#003366"><tr><td><font color="white" size="5">School Office &mdash; ${escapeHtml(school)} (legacy)</font></td><td align="right"><font color="white">${who}</font></td></tr></table>
<nav><a href="/">Home</a> | <a href="/attendance">Attendance</a> | <a href="/timetable">Timetable</a> | <a href="/reports">Reports</a></nav>
<h2>${escapeHtml(title)}</h2>
${body}
</body></html>
`
}

function send (res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) })
  res.end(html)
}

function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
