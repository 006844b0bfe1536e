// End users never notice the seam: in a real browser, every link of every page of the demo is
// followed, on a school where pages are migrated (new and legacy pages mixed) and on one where
// none is. Every page must answer, carry the legacy's navigation (the same links), and lead on;
// a dead end, a broken link or a page without the menu fails.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { NAVIGATION } from '../../new-routes/page.ts'
import { PROJECT_ROOT, spawnFicus, writeJson } from '../helpers/proxy-kit.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const MAX_PAGES = 50
const NAV_HREFS = NAVIGATION.map((link) => link.href)

interface Visit { readonly path: string, readonly status: number, readonly servedBy: string | undefined, readonly links: readonly string[] }

async function crawl (context: BrowserContext, origin: string): Promise<Visit[]> {
  const page = await context.newPage()
  const visits: Visit[] = []
  const queue = ['/']
  const seen = new Set(queue)
  while (queue.length > 0 && visits.length < MAX_PAGES) {
    const path = queue.shift() as string
    const response = await page.goto(origin + path)
    const links = await page.$$eval('a[href]', (anchors) => anchors.map((anchor) => (anchor as HTMLAnchorElement).href))
    const local = links.map((href) => new URL(href)).filter((url) => url.origin === origin).map((url) => url.pathname)
    visits.push({ path, status: response?.status() ?? 0, servedBy: (await response?.allHeaders())?.['x-served-by'], links: local })
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
      t.ok(NAV_HREFS.every((href) => visit.links.includes(href)), `${school} ${visit.path} (${String(visit.servedBy)}) has the legacy's navigation`)
      t.ok(visit.links.some((link) => link !== visit.path), `${school} ${visit.path} is no dead end`)
    }
    for (const href of NAV_HREFS) t.ok(visits.some((visit) => visit.path === href), `${school}: ${href} reached`)
  }
  t.same([...(sides['school-a'] ?? [])].sort(), ['legacy', 'new'], 'school-a mixes legacy and new pages')
  t.same([...(sides['school-b'] ?? [])], ['legacy'], 'school-b is all legacy')
})

t.test('the migrated pages\' menu is the legacy\'s menu: same links, same order', async (t) => {
  const { startDemoLegacyApp } = await import('../../demo/legacy-app.ts')
  const legacy = await startDemoLegacyApp(0)
  t.teardown(() => legacy.close())
  const response = await fetch(`${legacy.url}/attendance`, { headers: { host: 'school-b.localhost' } })
  const html = await response.text()
  const legacyMenu = [...html.matchAll(/<a href="([^"]+)">/g)].map((match) => match[1]).filter((href) => href !== '/sign-in' && href !== '/sign-out')
  t.same(legacyMenu, NAV_HREFS)
})
