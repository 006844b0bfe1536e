// End users never notice the seam: in a real browser, every link of every page of the demo is
// followed, on a school where pages are migrated (new and legacy pages mixed) and on one where
// none is, signing in where a page needs it and out where a page offers it, as a user would.
// Every page must answer, carry the legacy's navigation (the same links in its <nav>), say who is
// signed in (or offer to sign in) as the legacy does, and lead on; a dead end, a broken link, a
// page without the menu or with the wrong account slot fails.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import type { FastifyRequest } from 'fastify'
import { NAVIGATION, page as framedPage } from '../../new-routes/page.ts'
import { PROJECT_ROOT, spawnFicus, writeJson } from '../helpers/proxy-kit.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const MAX_PAGES = 50
const NAV_HREFS = NAVIGATION.map((link) => link.href)

const LOGIN_PATH = '/login'
const LOGOUT_PATH = '/logout'
const DEMO_USER = 'teacher'

interface Visit {
  readonly path: string
  readonly status: number
  readonly servedBy: string | undefined
  /** Every same-site link of the page, menu and account slot included (pathnames). */
  readonly links: readonly string[]
  /** The links of the page's <nav>, in order: the menu proper. */
  readonly menu: readonly string[]
  /** Whether the crawler's browser was signed in when the page was shown. */
  readonly signedIn: boolean
  /** The account slot: who the page says is signed in (undefined: it offers to sign in), or null when it says neither. */
  readonly shownUser: string | null | undefined
  /** The pathname of the page's sign-in or sign-out link, as its account slot offers it. */
  readonly accountLink: string | undefined
}

/**
 * Follows every same-site link from / as a user would: where a page needs signing in, the
 * legacy's sign-in form is filled in (as the demo's teacher), and following "Sign out" signs out.
 */
async function crawl (context: BrowserContext, origin: string): Promise<Visit[]> {
  const page = await context.newPage()
  const visits: Visit[] = []
  const queue = ['/']
  const seen = new Set(queue)
  let signedIn = false
  while (queue.length > 0 && visits.length < MAX_PAGES) {
    const path = queue.shift() as string
    let response = await page.goto(origin + path)
    if (new URL(page.url()).pathname === LOGIN_PATH && await page.$('form[action="/login"]') !== null) {
      // The sign-in page (asked for, or sent to by a page that needs it): a user signs in there.
      await page.selectOption('select[name="user"]', DEMO_USER)
      ;[response] = await Promise.all([page.waitForNavigation(), page.click('input[type="submit"]')])
      signedIn = true
    } else if (path === LOGOUT_PATH) {
      signedIn = false
    }
    const links = await page.$$eval('a[href]', (anchors) => anchors.map((anchor) => (anchor as HTMLAnchorElement).href))
    const menu = await page.$$eval('nav a[href]', (anchors) => anchors.map((anchor) => (anchor as HTMLAnchorElement).href))
    const local = links.map((href) => new URL(href)).filter((url) => url.origin === origin).map((url) => url.pathname)
    const body = await page.textContent('body') ?? ''
    const shownUser = /Signed in as\s+(\S+)/.exec(body)?.[1] ?? (/\bSign in\b/.test(body) ? undefined : null)
    const accountHref = await page.$$eval('a', (anchors) => anchors.find((anchor) => /^Sign (in|out)$/.test(anchor.textContent?.trim() ?? ''))?.getAttribute('href') ?? undefined)
    visits.push({
      path,
      status: response?.status() ?? 0,
      servedBy: (await response?.allHeaders())?.['x-served-by'],
      links: local,
      menu: menu.map((href) => new URL(href).pathname),
      signedIn,
      shownUser,
      accountLink: accountHref === undefined ? undefined : new URL(accountHref, origin).pathname
    })
    for (const next of local) {
      if (!seen.has(next)) {
        seen.add(next)
        queue.push(next)
      }
    }
  }
  await page.close()
  return visits
}

t.test('every link of every page, legacy and new, leads somewhere with the same navigation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-navigation-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The demo's flags, with the timetable migrated for school-a too: two new pages among legacy ones.
  const flags = JSON.parse(readFileSync(join(PROJECT_ROOT, 'demo/flags.json'), 'utf8')) as { features: Array<{ name: string, enabled: boolean, strategies: unknown[] }> }
  const timetable = flags.features.find((feature) => feature.name === 'timetable-page')
  if (timetable === undefined) throw new Error('demo/flags.json has no timetable-page flag')
  Object.assign(timetable, { enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [{ contextName: 'tenantId', operator: 'IN', values: ['school-a'] }] }] })
  const flagsFile = join(dir, 'flags.json')
  writeJson(flagsFile, flags)

  const ficus = spawnFicus(t, { PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  const port = new URL(String(serving.public)).port
  // The demo creates its schools' databases first, which holds the event loop for seconds.
  await ficus.waitForLog((line) => line.msg === 'embedded school databases created', 'the demo schools\' databases', 120_000)

  const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  t.teardown(() => context.close())

  const sides: Record<string, Set<string>> = {}
  for (const school of ['school-a', 'school-b']) {
    const visits = await crawl(context, `http://${school}.localhost:${port}`)
    const served = new Set(visits.map((visit) => String(visit.servedBy)))
    sides[school] = served
    t.ok(visits.length >= NAV_HREFS.length, `${school}: ${visits.length} pages reached from /: ${visits.map((visit) => `${visit.path} (${String(visit.servedBy)})`).join(', ')}`)
    for (const visit of visits) {
      t.ok(visit.status >= 200 && visit.status < 400, `${school} ${visit.path} (${String(visit.servedBy)}) answers ${visit.status}`)
      const where = `${school} ${visit.path} (${String(visit.servedBy)}, ${visit.signedIn ? 'signed in' : 'signed out'})`
      t.same(visit.menu, NAV_HREFS, `${where} has the legacy's navigation`)
      if (visit.signedIn) t.match({ user: visit.shownUser, link: visit.accountLink }, { user: DEMO_USER, link: LOGOUT_PATH }, `${where} says who is signed in, with a sign-out link`)
      else t.match({ user: visit.shownUser, link: visit.accountLink }, { user: undefined, link: LOGIN_PATH }, `${where} offers to sign in`)
      t.ok(visit.links.some((link) => link !== visit.path), `${where} is no dead end`)
    }
    for (const href of [...NAV_HREFS, LOGIN_PATH, LOGOUT_PATH]) t.ok(visits.some((visit) => visit.path === href), `${school}: ${href} reached`)
    t.ok(visits.some((visit) => visit.signedIn) && visits.some((visit) => !visit.signedIn), `${school}: pages seen signed in and signed out`)
  }
  t.same([...(sides['school-a'] ?? [])].sort(), ['legacy', 'new'], 'school-a mixes legacy and new pages')
  t.same([...(sides['school-b'] ?? [])], ['legacy'], 'school-b is all legacy')
})

t.test('the migrated pages\' menu is the legacy\'s menu: same links, same order', async (t) => {
  const { startDemoLegacyApp } = await import('../../demo/legacy-app.ts')
  const legacy = await startDemoLegacyApp(0)
  t.teardown(() => legacy.close())
  const response = await fetch(`${legacy.url}/timetable`, { headers: { host: 'school-b.localhost' } })
  const legacyHtml = await response.text()
  // A migrated page as page() frames it, for someone not signed in (the account slot links to sign in).
  const migratedHtml = framedPage({ url: '/timetable', tenant: { name: 'School B' }, user: null, server: { accountPaths: { loginPath: LOGIN_PATH, logoutPath: LOGOUT_PATH } } } as unknown as FastifyRequest, 'Timetable', '<p>…</p>')
  t.same(menuOf(legacyHtml), NAV_HREFS, 'the legacy\'s <nav> is NAVIGATION')
  t.same(menuOf(migratedHtml), NAV_HREFS, 'the migrated page\'s <nav> is NAVIGATION')
  t.same(hrefs(legacyHtml.replace(/<nav>[\s\S]*?<\/nav>/, '')), [LOGIN_PATH], 'outside the menu, the legacy page links only to sign in')
  t.same(hrefs(migratedHtml.replace(/<nav>[\s\S]*?<\/nav>/, '')), [`${LOGIN_PATH}?next=%2Ftimetable`], 'and so does the migrated one, back to the page')
})

function hrefs (html: string): string[] {
  return [...html.matchAll(/<a href="([^"]+)">/g)].map((match) => match[1] as string)
}

function menuOf (html: string): string[] {
  const navs = [...html.matchAll(/<nav>([\s\S]*?)<\/nav>/g)]
  return navs.length === 1 ? hrefs(navs[0]?.[1] ?? '') : []
}
