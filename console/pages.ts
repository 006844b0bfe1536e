// The console's pages: plain server-rendered HTML and one small stylesheet, no script, so it
// works without a build step and entirely from the keyboard (links, buttons and labelled fields
// in reading order, a visible focus ring). Every value shown is escaped.
import type { FicusError } from '../errors/index.ts'
import { escapeHtml as e } from '../html/escape.ts'
import type { MigratedRoute } from '../core/route.ts'
import type { ShadowCounts, ShadowMismatch } from '../safety/shadow.ts'
import type { DecisionExplanation } from '../flags/decide-backend.ts'
import type { BreakerState } from '../core/safety-events.ts'
import type { FlagState } from './flag-store.ts'
import type { Change } from './history.ts'
import type { Preview } from './migration.ts'
import type { CellEvidence, SchoolRow } from './matrix.ts'
import type { Side } from './side.ts'
import type { FreezeWindow } from './freeze.ts'
import type { ScheduledChange } from './schedule.ts'

const STYLE = `
:root{font-family:system-ui,sans-serif;color:#1b1f24;background:#f6f7f9}
body{margin:0}header{background:#23395d;color:#fff;padding:.6rem 1rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header a{color:#fff}header form{margin-left:auto}main{padding:1rem;max-width:90rem}
a{color:#1d4ed8}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:.5rem;background:#fff;color:#000;padding:.3rem}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #d0d5dd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.cell a{display:block;text-decoration:none;color:inherit}td.cell small{display:block;color:#475467;font-size:.75rem}
.side{display:inline-block;border-radius:.3rem;padding:0 .35rem;font-weight:600;font-size:.85rem}
.side-new{background:#d1fadf;color:#05603a}.side-legacy{background:#eaecf0;color:#344054}.side-shadow{background:#e0eaff;color:#2d31a6}
.side-kill{background:#fee4e2;color:#b42318}.side-mixed{background:#fff;color:#344054;border:1px dashed #667085}.side-breaker{background:#fef0c7;color:#93370d}
.notice{background:#fff;border-left:4px solid #1d4ed8;padding:.5rem .8rem;margin:.8rem 0}.warn{border-color:#f59e0b}.bad{border-color:#d92d20}
pre{background:#101828;color:#f2f4f7;padding:.6rem;overflow:auto;font-size:.8rem}
form.inline{display:inline}button{font:inherit;padding:.3rem .7rem;border-radius:.3rem;border:1px solid #98a2b3;background:#fff;cursor:pointer}
button.primary{background:#1d4ed8;color:#fff;border-color:#1d4ed8}button.danger{background:#b42318;color:#fff;border-color:#b42318}
fieldset{background:#fff;border:1px solid #d0d5dd;margin:.8rem 0}label{display:block;margin:.3rem 0}
.moves{display:flex;gap:1rem;flex-wrap:wrap}nav.pager a,nav.cohorts a{margin-right:.6rem}
`

/** What the pages show of a route: plain data, so that the page worker can have it. */
export type RouteInfo = Pick<MigratedRoute, 'name' | 'method' | 'url' | 'flag' | 'killSwitch'>

export interface PageUser {
  readonly user: string
  readonly csrf: string
}

export function layout (title: string, body: string, user?: PageUser, freeze?: FreezeWindow): string {
  const bar = user === undefined
    ? ''
    : `<a href="/console">Matrix</a><a href="/console/history">History</a><a href="/console/scheduled">Scheduled</a>
       <form method="post" action="/console/sign-out"><input type="hidden" name="csrf" value="${e(user.csrf)}"><span>${e(user.user)}</span> <button type="submit">Sign out</button></form>`
  const frozen = freeze === undefined ? '' : `<div class="notice warn" role="note">Freeze window on (${e(freeze.text)}): moves towards new need an override with a reason. Moves to legacy and kill switches are always allowed.</div>`
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${e(title)} · ficus console</title><style>${STYLE}</style></head>
<body><a class="skip" href="#main">Skip to content</a><header><strong>ficus · migration console</strong>${bar}</header>
<main id="main"><h1>${e(title)}</h1>${frozen}${body}</main></body></html>`
}

export function signInPage (error: string | undefined, adminOnly: boolean): string {
  return layout('Sign in', `${error === undefined ? '' : `<div class="notice bad" role="alert">${e(error)}</div>`}
<form method="post" action="/console/sign-in">
<label>User <input name="user" autocomplete="username" value="${adminOnly ? 'admin' : ''}" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required autofocus aria-describedby="password-hint"></label>
<p id="password-hint"><small>User admin signs in with the admin token.</small></p>
<button class="primary" type="submit">Sign in</button></form>`)
}

export function errorPage (error: FicusError, user?: PageUser, back?: string): string {
  return layout(error.statusCode === 404 ? 'Not found' : 'Not done', `<div class="notice bad" role="alert"><p>${e(error.message)}</p><p><small>${e(error.code)}</small></p></div>
<p><a href="${e(back ?? '/console')}">Back</a></p>`, user)
}

export function sideBadge (side: Side): string {
  const css = side === 'new' ? 'new' : side === 'shadow' ? 'shadow' : side === 'kill switch' ? 'kill' : side === 'breaker open' ? 'breaker' : 'legacy'
  return `<span class="side side-${css}">${e(side)}</span>`
}

const percent = (part: number, whole: number): string => whole === 0 ? '–' : `${Math.round((part / whole) * 100)}%`

export function evidenceLine (evidence: CellEvidence): string {
  const parts: string[] = []
  const requests = evidence.requests
  if (requests !== undefined) parts.push(requests.total === 0 ? 'no requests lately' : `served new ${percent(requests.servedNew, requests.total)} of ${requests.total}`)
  const compared = evidence.shadow.match + evidence.shadow.mismatch + evidence.shadow.error
  if (compared > 0) parts.push(`shadow match ${percent(evidence.shadow.match, compared)} of ${compared}`)
  if (requests !== undefined && requests.fallbacks > 0) parts.push(`fallbacks ${requests.fallbacks}`)
  if (requests !== undefined && requests.errors > 0) parts.push(`5xx ${requests.errors}`)
  return parts.join(' · ')
}

export interface MatrixColumn {
  readonly label: string
  readonly href: string
  readonly cells: ReadonlyArray<{ href: string, evidence: CellEvidence, school: boolean }>
}

export function matrixPage (options: {
  user: PageUser
  freeze: FreezeWindow | undefined
  routes: readonly RouteInfo[]
  columns: readonly MatrixColumn[]
  cohorts: ReadonlyArray<{ name: string, count: number }>
  query: string
  cohort: string | undefined
  page: number
  pages: number
  schoolCount: number
  takenAt: number
  store: string
}): string {
  const { routes, columns } = options
  const heading = options.query !== '' ? `Schools matching "${options.query}"` : options.cohort !== undefined ? `Cohort ${options.cohort}` : 'Cohorts'
  const pager = options.pages <= 1
    ? ''
    : `<nav class="pager" aria-label="Pages">${Array.from({ length: options.pages }, (_, i) => i + 1).map((n) => n === options.page ? `<strong aria-current="page">${n}</strong> ` : `<a href="/console?cohort=${encodeURIComponent(options.cohort ?? '')}&amp;page=${n}">${n}</a>`).join('')}</nav>`
  const rows = routes.map((route, r) => `<tr><th scope="row"><a href="/console/route?route=${encodeURIComponent(route.name)}">${e(route.name)}</a><br><small>${e(methods(route))} ${e(route.url)} · flag ${e(route.flag)}</small></th>${columns.map((column) => {
    const cell = column.cells[r]
    if (cell === undefined) return '<td></td>'
    const ev = cell.evidence
    const count = cell.school ? '' : ` ${ev.sides.new + ev.sides['breaker open']}/${ev.schools} new`
    const held = ev.sides['kill switch'] + ev.sides['breaker open']
    const extra = cell.school ? '' : [ev.sides.shadow > 0 ? `${ev.sides.shadow} in shadow` : '', held > 0 ? `${held} held on legacy` : ''].filter((x) => x !== '').join(' · ')
    const badge = cell.school || ev.sides[ev.side] === ev.schools ? sideBadge(ev.side) : '<span class="side side-mixed">mixed</span>'
    return `<td class="cell"><a href="${e(cell.href)}">${badge}${e(count)}<small>${e([extra, evidenceLine(ev)].filter((x) => x !== '').join(' · '))}</small></a></td>`
  }).join('')}</tr>`).join('')
  return layout('Where every route stands', `
<form method="get" action="/console" role="search"><label>Find a school <input name="q" value="${e(options.query)}" placeholder="school-b or a name"></label> <button type="submit">Search</button></form>
<nav class="cohorts" aria-label="Cohorts"><a href="/console">All cohorts</a>${options.cohorts.map((c) => `<a href="/console?cohort=${encodeURIComponent(c.name)}">${e(c.name)} (${c.count})</a>`).join('')}</nav>
<p>${options.schoolCount} schools · flags in ${e(options.store)} · sides as of ${e(new Date(options.takenAt).toISOString().slice(11, 19))} UTC · requests counted by each school's first cohort over the last five minutes</p>
<h2>${e(heading)}</h2>${pager}
<table><caption class="skip">Routes by ${options.cohort === undefined && options.query === '' ? 'cohort' : 'school'}</caption>
<thead><tr><th scope="col">Route</th>${columns.map((column) => `<th scope="col"><a href="${e(column.href)}">${e(column.label)}</a></th>`).join('')}</tr></thead>
<tbody>${rows}</tbody></table>${pager}`, options.user, options.freeze)
}

function methods (route: RouteInfo): string {
  return Array.isArray(route.method) ? route.method.join(',') : String(route.method)
}

function moveFields (route: string, action: string, school?: string): string {
  return `<input type="hidden" name="route" value="${e(route)}"><input type="hidden" name="action" value="${e(action)}">${school === undefined ? '' : `<input type="hidden" name="target" value="schools"><input type="hidden" name="schools" value="${e(school)}">`}`
}

export function cellPage (options: {
  user: PageUser
  freeze: FreezeWindow | undefined
  route: RouteInfo
  school: SchoolRow
  side: Side
  decision: DecisionExplanation
  shadowFlag: string | undefined
  shadow: ShadowCounts | undefined
  mismatches: readonly ShadowMismatch[]
  breaker: BreakerState
  history: readonly Change[]
  saved?: Change
}): string {
  const { route, school, user } = options
  const csrf = `<input type="hidden" name="csrf" value="${e(user.csrf)}">`
  const compared = options.shadow === undefined ? 0 : options.shadow.match + options.shadow.mismatch + options.shadow.error
  return layout(`${route.name} for ${school.id}`, `${savedNotice(options.saved)}
<p>${e(school.name)} · cohorts ${e(school.cohorts.join(', ') || 'none')} · <a href="/console/school?id=${encodeURIComponent(school.id)}">every route of this school</a> · <a href="/console/route?route=${encodeURIComponent(route.name)}">every school on this route</a></p>
<h2>Now: ${sideBadge(options.side)}</h2>
<p><strong>Why:</strong> ${e(decisionInWords(options.decision))}</p>
<p><strong>Breaker:</strong> ${e(options.breaker)}${options.breaker === 'closed' ? '' : ' — this school is served by legacy on this route until a probe succeeds'}</p>
<p><strong>Shadow</strong> (flag ${e(options.shadowFlag ?? 'none')}): ${compared === 0 ? 'no comparisons yet' : `${options.shadow?.match ?? 0} match, ${options.shadow?.mismatch ?? 0} mismatch, ${options.shadow?.error ?? 0} error`}</p>
<h2>Moves</h2>
<div class="moves">
<form method="post" action="/console/preview">${csrf}${moveFields(route.name, 'new', school.id)}<button class="primary" type="submit">Move to new…</button></form>
<form method="post" action="/console/apply">${csrf}${moveFields(route.name, 'legacy', school.id)}<button type="submit">Back to legacy</button></form>
<form method="post" action="/console/preview">${csrf}${moveFields(route.name, 'shadow-on', school.id)}<button type="submit">Shadow on…</button></form>
<form method="post" action="/console/apply">${csrf}${moveFields(route.name, 'shadow-off', school.id)}<button type="submit">Shadow off</button></form>
</div>
<h2>Last mismatches</h2>${mismatchList(options.mismatches)}
<h2>Changes of this route for ${e(school.id)}</h2>${historyTable(options.history, user)}`, user, options.freeze)
}

export function decisionInWords (decision: DecisionExplanation): string {
  const strategy = decision.detail.strategy
  const side = decision.backend === 'new' ? 'the new handler' : 'legacy'
  if (strategy === undefined) return `${side}: ${decision.reason} (flag ${decision.flag})`
  const constraints = (strategy.constraints as Array<{ contextName: string, operator: string, values?: string[], inverted?: boolean }> | undefined ?? [])
    .map((c) => `${c.contextName} ${c.inverted === true ? 'not ' : ''}${c.operator} ${(c.values ?? []).slice(0, 8).join(', ')}${(c.values?.length ?? 0) > 8 ? ` and ${(c.values?.length ?? 0) - 8} more` : ''}`)
  const rollout = (strategy.parameters as Record<string, string> | undefined)?.rollout
  return `${side}: flag ${decision.flag}, ${decision.reason}${rollout === undefined ? '' : `, rollout ${rollout}%`}${constraints.length === 0 ? '' : ` where ${constraints.join(' and ')}`}`
}

function mismatchList (mismatches: readonly ShadowMismatch[]): string {
  if (mismatches.length === 0) return '<p>None kept.</p>'
  return mismatches.map((m) => `<details><summary>${e(m.at)} · ${e(m.method)} ${e(m.path)} · ${e(m.outcome)} · legacy ${m.legacyStatus}, new ${m.newStatus ?? '–'}</summary><pre>${e(m.diff)}</pre></details>`).join('')
}

function savedNotice (change: Change | undefined): string {
  return change === undefined ? '' : `<div class="notice" role="status">Saved: ${e(change.what)} (${e(change.flag)}). Live within two seconds.</div>`
}

export function historyTable (changes: readonly Change[], user: PageUser): string {
  if (changes.length === 0) return '<p>No changes recorded.</p>'
  return `<table><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Route · flag</th><th scope="col">What</th><th scope="col">Schools</th><th scope="col">Override reason</th><th scope="col">Before → after</th><th scope="col"></th></tr></thead><tbody>
${changes.map((c) => `<tr><td>${e(c.at)}</td><td>${e(c.who)}</td><td>${e(c.route)} · ${e(c.flag)}</td><td>${e(c.what)}${c.scheduledBy === undefined ? '' : ' (scheduled)'}</td><td>${e(c.schools.slice(0, 10).join(', '))}${c.schools.length > 10 ? ` and ${c.schools.length - 10} more` : ''}</td><td>${e(c.overrideReason ?? '')}</td>
<td><details><summary>definitions</summary><pre>${e(stateText(c.before))}</pre><pre>${e(stateText(c.after))}</pre></details></td>
<td><form method="post" action="/console/revert"><input type="hidden" name="csrf" value="${e(user.csrf)}"><input type="hidden" name="id" value="${e(c.id)}"><button type="submit">Revert…</button></form></td></tr>`).join('')}
</tbody></table>`
}

export function stateText (state: FlagState): string {
  return JSON.stringify({ enabled: state.enabled, strategies: state.strategies.map(({ id: _id, ...rest }) => rest) }, null, 1)
}

export function routePage (options: { user: PageUser, freeze: FreezeWindow | undefined, route: RouteInfo, cohorts: readonly string[], history: readonly Change[], saved?: Change, hasShadow: boolean }): string {
  const { route, user } = options
  const csrf = `<input type="hidden" name="csrf" value="${e(user.csrf)}">`
  const targets = `<label><input type="radio" name="target" value="schools" checked> Schools (ids, one per line or separated by commas)</label>
<textarea name="schools" rows="3" cols="40" aria-label="School ids"></textarea>
<label><input type="radio" name="target" value="cohort"> Cohort <select name="cohort" aria-label="Cohort">${options.cohorts.map((c) => `<option>${e(c)}</option>`).join('')}</select></label>
<label><input type="radio" name="target" value="percentage"> Share of all schools, sticky by school <input name="percent" type="number" min="0" max="100" value="10" aria-label="Percentage"> %</label>`
  return layout(`Route ${route.name}`, `${savedNotice(options.saved)}
<p>${e(methods(route))} ${e(route.url)} · flag ${e(route.flag)}${route.killSwitch === undefined ? '' : ` · kill switch ${e(route.killSwitch)}`}</p>
<form method="post" action="/console/preview"><fieldset><legend>Move schools</legend>${csrf}<input type="hidden" name="route" value="${e(route.name)}">${targets}
<label>Move <select name="action"><option value="new">to new</option><option value="legacy">back to legacy</option>${options.hasShadow ? '<option value="shadow-on">into shadow</option><option value="shadow-off">out of shadow</option>' : ''}</select></label>
<button class="primary" type="submit">Preview</button></fieldset></form>
<div class="moves">
<form method="post" action="/console/apply">${csrf}${moveFields(route.name, 'kill')}<button class="danger" type="submit">Pull the kill switch (every school to legacy)</button></form>
<form method="post" action="/console/preview">${csrf}${moveFields(route.name, 'release')}<button type="submit">Release the kill switch…</button></form>
</div>
<h2>Changes of this route</h2>${historyTable(options.history, user)}`, user, options.freeze)
}

export function previewPage (options: { user: PageUser, preview: Preview, fields: Record<string, string>, back: string }): string {
  const { preview, user } = options
  const list = (ids: readonly string[]): string => ids.length === 0 ? '' : `: ${ids.slice(0, 25).join(', ')}${ids.length > 25 ? ` and ${ids.length - 25} more` : ''}`
  const lines: string[] = []
  if (preview.toNew.length > 0) lines.push(`This moves ${preview.toNew.length} school${preview.toNew.length === 1 ? '' : 's'} to new${list(preview.toNew)}.`)
  if (preview.toLegacy.length > 0) lines.push(`This moves ${preview.toLegacy.length} school${preview.toLegacy.length === 1 ? '' : 's'} back to legacy${list(preview.toLegacy)}.`)
  if (preview.shadowOn.length > 0) lines.push(`Shadow starts for ${preview.shadowOn.length}${list(preview.shadowOn)}.`)
  if (preview.shadowOff.length > 0) lines.push(`Shadow stops for ${preview.shadowOff.length}${list(preview.shadowOff)}.`)
  if (lines.length === 0) lines.push('No school changes side.')
  const moved = preview.toNew.length + preview.toLegacy.length + preview.shadowOn.length + preview.shadowOff.length
  if (moved > 0) {
    lines.push(preview.recentMismatch.length === 0 ? `None of ${moved === 1 ? 'it' : 'them'} has a shadow mismatch in the last 24 h.` : `${preview.recentMismatch.length} had a shadow mismatch in the last 24 h${list(preview.recentMismatch)}.`)
    lines.push(preview.openBreaker.length === 0 ? 'No open breaker.' : `${preview.openBreaker.length} ha${preview.openBreaker.length === 1 ? 's' : 've'} an open breaker${list(preview.openBreaker)}.`)
  }
  if (preview.alsoRoutes.length > 0) lines.push(`The flag ${preview.flag} also guards ${preview.alsoRoutes.join(', ')}: ${preview.alsoRoutes.length === 1 ? 'it moves' : 'they move'} too.`)
  const hidden = Object.entries({ ...options.fields, version: preview.version, csrf: user.csrf }).map(([name, value]) => `<input type="hidden" name="${e(name)}" value="${e(value)}">`).join('')
  const override = preview.needsOverride
    ? `<div class="notice warn" role="alert">A freeze window is on (${e(preview.freeze?.text ?? '')}). To save a move towards new now, give the reason for the override.</div>
<label>Override reason <input name="overrideReason" size="60" required></label>`
    : ''
  return layout(`Preview: ${preview.what}`, `<p>Route ${e(preview.move.route)} · flag ${e(preview.flag)}</p>
<div class="notice" role="status">${lines.map((line) => `<p>${e(line)}</p>`).join('')}</div>
<details><summary>Flag definition before and after</summary><pre>${e(stateText(preview.before))}</pre><pre>${e(stateText(preview.after))}</pre></details>
${preview.unchanged ? `<p><a href="${e(options.back)}">Back</a></p>` : `<form method="post" action="/console/apply">${hidden}${override}<button class="primary" type="submit">Save</button> <a href="${e(options.back)}">Cancel</a></form>
${options.fields.revert === undefined ? `<form method="post" action="/console/schedule"><fieldset><legend>Or schedule it</legend>${hidden}
<label>At (UTC) <input type="datetime-local" name="at" step="1" required></label>
<label>Override reason, if it will fall in a freeze window <input name="overrideReason" size="60"></label>
<p><small>Applied at that time only if ${e(preview.flag)} is still as it is now; otherwise it is skipped and reported.</small></p>
<button type="submit">Schedule</button></fieldset></form>` : ''}`}`, user, preview.freeze)
}

export function schoolPage (options: { user: PageUser, freeze: FreezeWindow | undefined, school: SchoolRow, rows: ReadonlyArray<{ route: RouteInfo, side: Side, reason: string }>, history: readonly Change[] }): string {
  const { school } = options
  return layout(`School ${school.id}`, `<p>${e(school.name)} · ${e(school.status)} · cohorts ${e(school.cohorts.join(', ') || 'none')}</p>
<table><thead><tr><th scope="col">Route</th><th scope="col">Side</th><th scope="col">Why</th></tr></thead><tbody>
${options.rows.map((row) => `<tr><th scope="row"><a href="/console/cell?route=${encodeURIComponent(row.route.name)}&amp;school=${encodeURIComponent(school.id)}">${e(row.route.name)}</a></th><td>${sideBadge(row.side)}</td><td>${e(row.reason)}</td></tr>`).join('')}
</tbody></table><h2>Changes that moved ${e(school.id)}</h2>${historyTable(options.history, options.user)}`, options.user, options.freeze)
}

export function historyPage (options: { user: PageUser, freeze: FreezeWindow | undefined, changes: readonly Change[], saved?: Change }): string {
  return layout('Who did what', `${savedNotice(options.saved)}${historyTable(options.changes, options.user)}`, options.user, options.freeze)
}

export function scheduledPage (options: { user: PageUser, freeze: FreezeWindow | undefined, changes: readonly ScheduledChange[], added?: ScheduledChange }): string {
  const { user } = options
  const rows = options.changes.map((c) => `<tr><td>${e(c.dueAt)}</td><td>${e(c.who)}</td><td>${e(c.route)} · ${e(c.flag)}</td><td>${e(c.what)}</td><td>${e(c.status)}</td><td>${e(c.outcome ?? '')}</td>
<td>${c.status === 'pending' ? `<form method="post" action="/console/scheduled/cancel"><input type="hidden" name="csrf" value="${e(user.csrf)}"><input type="hidden" name="id" value="${e(c.id)}"><button type="submit">Cancel</button></form>` : ''}</td></tr>`).join('')
  return layout('Scheduled changes', `${options.added === undefined ? '' : `<div class="notice" role="status">Scheduled: ${e(options.added.what)} at ${e(options.added.dueAt)}.</div>`}
${options.changes.length === 0 ? '<p>Nothing scheduled.</p>' : `<table><thead><tr><th scope="col">Due</th><th scope="col">Who</th><th scope="col">Route · flag</th><th scope="col">What</th><th scope="col">Status</th><th scope="col">Outcome</th><th scope="col"></th></tr></thead><tbody>${rows}</tbody></table>`}`, user, options.freeze)
}
