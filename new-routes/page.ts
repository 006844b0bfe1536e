// The frame of every migrated page: the legacy's navigation (the same links, in the same order,
// so a user moves between legacy and new pages and back without a dead end) and, like legacy's
// pages, who is signed in with a link to the legacy's sign-out (or sign-in). The look is
// deliberately unlike legacy's, so a switch is visible at a glance.
import type { FastifyRequest } from 'fastify'
import { escapeHtml } from '../html/escape.ts'

/** The legacy's main navigation; a page that legacy adds to its menu is added here too. */
export const NAVIGATION: ReadonlyArray<{ readonly href: string, readonly label: string }> = Object.freeze([
  { href: '/', label: 'Home' },
  { href: '/attendance', label: 'Attendance' },
  { href: '/timetable', label: 'Timetable' },
  { href: '/reports', label: 'Reports' }
])

export function page (request: FastifyRequest, title: string, body: string): string {
  const schoolName = request.tenant.name
  const nav = NAVIGATION.map((link) => `<a href="${link.href}">${escapeHtml(link.label)}</a>`).join('\n    ')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - ${escapeHtml(schoolName)}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f7fb; color: #14213d }
  header { background: #2a9d8f; color: white; padding: 1rem 2rem; display: flex; justify-content: space-between; align-items: baseline }
  header a { color: white } .account { margin: 0 } nav { background: #e0f0ee; padding: .5rem 2rem; display: flex; gap: 1.5rem }
  main { padding: 2rem } .lead { font-size: 1.2rem }
  .cards { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: 1rem }
  .cards li { background: white; border-radius: .75rem; padding: 1rem; box-shadow: 0 1px 4px #0002; display: flex; flex-direction: column }
</style></head>
<body><header><div><h1>${escapeHtml(title)}</h1><p>${escapeHtml(schoolName)} &middot; new</p></div>${account(request)}</header>
<nav>
    ${nav}
</nav>
<main>${body}</main></body></html>
`
}

/** "Signed in as … · Sign out", or a sign-in link back to this page, with the legacy's paths. */
function account (request: FastifyRequest): string {
  const paths = (request.server as { accountPaths?: { loginPath: string, logoutPath: string } }).accountPaths
  if (paths === undefined) return ''
  const user = (request as { user?: { id: string } | null }).user
  if (user === undefined || user === null) {
    return `<p class="account"><a href="${escapeHtml(`${paths.loginPath}?next=${encodeURIComponent(request.url)}`)}">Sign in</a></p>`
  }
  return `<p class="account">Signed in as <strong class="user">${escapeHtml(user.id)}</strong> &middot; <a href="${escapeHtml(paths.logoutPath)}">Sign out</a></p>`
}
