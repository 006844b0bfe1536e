// The demo's sign-in journey in a real browser (Debian's chromium): a migrated page sends an
// anonymous visitor to the legacy's sign-in and back, shows who is signed in and signs out on
// the legacy; a script on a legacy page changes the preferences with the page's CSRF token.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import t from 'tap'
import { PROJECT_ROOT, spawnFicus } from '../helpers/proxy-kit.ts'

t.setTimeout(90_000)

const dir = mkdtempSync(join(tmpdir(), 'ficus-demo-browser-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const flagsFile = join(dir, 'flags.json')
copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)
const ficus = spawnFicus(t, { HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile })
const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
const port = new URL(String(serving.public)).port
const schoolA = `http://school-a.localhost:${port}`

/** A fresh browser profile: its own cookies, so each test is a different visitor. */
async function newPage (profile: string) {
  const context = await chromium.launchPersistentContext(join(dir, profile), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => context.close())
  return context.pages()[0] ?? await context.newPage()
}

t.test('sign in on the legacy from a migrated page, see who is signed in, sign out', async (t) => {
  const page = await newPage('teacher')
  await page.goto(`${schoolA}/attendance`)
  t.equal(new URL(page.url()).pathname, '/login', 'not signed in: at the legacy sign-in')
  t.equal(new URL(page.url()).searchParams.get('next'), '/attendance')
  await page.selectOption('select[name=user]', 'teacher')
  await page.click('input[type=submit]')
  await page.waitForURL(`${schoolA}/attendance`)
  t.match(await page.textContent('header'), /Signed in as teacher/, 'back on the migrated page, signed in')
  t.match(await page.title(), /^Attendance - /, 'the new page')
  await page.click('text=Sign out')
  await page.waitForURL(`${schoolA}/`)
  t.match(await page.textContent('body'), /Sign in/, 'signed out on the legacy')
  t.match(await page.textContent('body'), /\(legacy\)/)
  await page.goto(`${schoolA}/attendance`)
  t.equal(new URL(page.url()).pathname, '/login', 'and the migrated page wants a sign-in again')
})

t.test('a script on a legacy page writes the preferences with that page\'s CSRF token; a forged call is refused', async (t) => {
  const page = await newPage('office')
  await page.goto(`${schoolA}/login?next=/reports`)
  await page.selectOption('select[name=user]', 'office')
  await page.click('input[type=submit]')
  await page.waitForURL(`${schoolA}/reports`)
  const status = await page.evaluate(async () => {
    const token = document.querySelector('meta[name=csrf-token]')?.getAttribute('content') ?? ''
    const put = (headers: Record<string, string>) => fetch('/me/preferences', { method: 'PUT', headers: { 'content-type': 'application/json', accept: 'application/json', ...headers }, body: JSON.stringify({ theme: 'dark' }) }).then((r) => r.status)
    return { withToken: await put({ 'x-csrftoken': token }), without: await put({}) }
  })
  t.same(status, { withToken: 200, without: 403 })
  await page.goto(`${schoolA}/reports`)
  t.match(await page.textContent('body'), /Your preferences: \{"theme":"dark"\}/, 'the next legacy page shows them')
  const office = await page.goto(`${schoolA}/attendance`)
  t.equal(office?.status(), 403, 'the office user may not see the register')
})
