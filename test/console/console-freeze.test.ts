// Freeze windows in a real browser: inside one, a move towards new is refused without an
// override reason and saved with one; a move back to legacy and the kill switch are never
// refused; the history shows who overrode and why.
import t from 'tap'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { PROJECT_ROOT, spawnFicus } from '../helpers/proxy-kit.ts'
import { startChromium } from '../helpers/chromium.ts'

const TOKEN = 'console-test-token-0123456789'

async function servedBy (origin: string, school: string): Promise<string | undefined> {
  const response = await request(`${origin}/attendance`, { headers: { host: `${school}.localhost` } })
  await response.body.dump()
  return response.headers['x-served-by'] as string | undefined
}

async function waitForSide (origin: string, school: string, side: string): Promise<void> {
  const start = performance.now()
  while (await servedBy(origin, school) !== side) {
    if (performance.now() - start > 5_000) throw new Error(`${school} not served by ${side}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('inside a freeze window: towards new needs an override, towards legacy never does', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-console-freeze-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile, PREWARM_LEGACY_CONNECTIONS: '0',
    ADMIN_TOKEN: TOKEN, CONSOLE_HISTORY_FILE: join(dir, 'history.jsonl'), CONSOLE_SCHEDULE_FILE: join(dir, 'schedule.json'),
    // Always on, whatever the hour the test runs at; plus a dated exception in another zone.
    FREEZE_WINDOWS: 'Sun-Sat 00:00-24:00 UTC; 2026-06-10 Europe/London'
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  const origin = String(serving.public)
  const consoleUrl = String(serving.console)
  const browser = await startChromium(t)
  const page = await browser.newPage()
  page.setDefaultTimeout(15_000)
  await page.goto(consoleUrl)
  await page.getByLabel('Password').fill(TOKEN)
  await page.keyboard.press('Enter')
  await page.waitForURL(/\/console$/)
  t.match(await page.textContent('main'), /Freeze window on \(Sun-Sat 00:00-24:00 UTC\)/, 'the matrix says a freeze window is on')

  await page.goto(`${consoleUrl}/cell?route=attendance.page&school=school-c`)
  await page.getByRole('button', { name: 'Move to new…' }).click()
  t.match(await page.textContent('[role=alert]'), /freeze window is on/, 'the preview asks for an override')
  // The browser will not submit the form without the reason; the server refuses it as well.
  await page.locator('form[action="/console/apply"] input[name=overrideReason]').evaluate((input) => input.removeAttribute('required'))
  await page.getByRole('button', { name: 'Save' }).click()
  t.match(await page.textContent('[role=alert]'), /A freeze window is on: a move towards new needs an override with a reason/, 'refused without an override')
  t.match(await page.textContent('[role=alert]'), /FICUS_ERR_CONSOLE_FROZEN/)
  t.equal(await servedBy(origin, 'school-c'), 'legacy', 'nothing was saved')

  await page.goto(`${consoleUrl}/cell?route=attendance.page&school=school-c`)
  await page.getByRole('button', { name: 'Move to new…' }).click()
  await page.getByLabel('Override reason', { exact: true }).fill('head teacher asked for it before the inspection')
  await page.getByRole('button', { name: 'Save' }).click()
  await waitForSide(origin, 'school-c', 'new')
  t.pass('accepted with an override reason: school-c is served by new')

  await page.getByRole('button', { name: 'Back to legacy' }).click()
  await waitForSide(origin, 'school-c', 'legacy')
  t.match(await page.textContent('[role=status]'), /Saved: school-c back to legacy/, 'back to legacy: one click, not refused')

  await page.goto(`${consoleUrl}/route?route=attendance.page`)
  await page.getByRole('button', { name: /Pull the kill switch/ }).click()
  await waitForSide(origin, 'school-a', 'legacy')
  t.pass('the kill switch is one click inside a freeze window and sends school-a to legacy')
  await page.getByRole('button', { name: /Release the kill switch/ }).click()
  t.match(await page.textContent('[role=status]'), 'This moves 1 school to new: school-a.', 'releasing it is a move towards new, previewed')
  t.equal(await page.locator('form[action="/console/apply"] input[name=overrideReason]').count(), 1, 'and needs an override')

  await page.getByRole('link', { name: 'History' }).click()
  const rows = await page.locator('tbody tr').allTextContents()
  t.equal(rows.length, 3, 'three changes recorded')
  t.match(rows[2], /admin.*school-c to new.*school-c.*head teacher asked for it before the inspection/s, 'the override and its reason are recorded')
  t.match(rows[1], /school-c back to legacy/, 'the move back is recorded')
  t.notMatch(rows[1], /head teacher/, 'with no override')
  t.match(rows[0], /kill switch pulled/)

  await page.goto(`${consoleUrl}/school?id=school-c`)
  t.equal(await page.locator('tbody tr').count() >= 2 + 6, true, 'the school page lists its routes and its changes')
  t.match(await page.textContent('main'), /Changes that moved school-c.*school-c back to legacy.*school-c to new/s, 'the history per school')
})
