// The console in a real browser, against the demo as `npm start` runs it (flags from a copy of
// the demo's flags file): sign in, read the matrix, move school-b's attendance page to new and
// see the public port serve it within 2 s, then revert that move from the history.
import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { PROJECT_ROOT, spawnFicus, type LogLine } from '../helpers/proxy-kit.ts'
import { startChromium } from '../helpers/chromium.ts'

const FLIP_BOUND_MS = 2_000
const TOKEN = 'console-test-token-0123456789'

async function servedBy (origin: string, school: string): Promise<string | undefined> {
  const response = await request(`${origin}/attendance`, { headers: { host: `${school}.localhost` } })
  await response.body.dump()
  const header = response.headers['x-served-by']
  return Array.isArray(header) ? header.join() : header
}

async function waitForSide (origin: string, school: string, side: string, timeoutMs: number): Promise<number> {
  const start = performance.now()
  for (;;) {
    if (await servedBy(origin, school) === side) return Math.round(performance.now() - start)
    if (performance.now() - start > timeoutMs) throw new Error(`${school} not served by ${side} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The demo as `npm start` serves it, on free ports, with a copy of its flags file and the console's files in a temp folder. */
async function startDemo (t: Parameters<typeof spawnFicus>[0]): Promise<{ flagsFile: string, serving: LogLine }> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-console-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile,
    ADMIN_TOKEN: TOKEN, CONSOLE_HISTORY_FILE: join(dir, 'history.jsonl'), CONSOLE_SCHEDULE_FILE: join(dir, 'schedule.json'), PREWARM_LEGACY_CONNECTIONS: '0'
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  return { flagsFile, serving }
}

t.test('sign in, see the demo matrix, move school-b to new, revert it from the history', async (t) => {
  const { flagsFile, serving } = await startDemo(t)
  const origin = String(serving.public)
  const consoleUrl = String(serving.console)
  t.match(consoleUrl, /^http:\/\/127\.0\.0\.1:\d+\/console$/, 'the log says where the console is')

  const browser = await startChromium(t)
  const page = await browser.newPage()
  page.setDefaultTimeout(15_000)
  await page.goto(consoleUrl)
  t.match(page.url(), /\/console\/sign-in$/, 'an unsigned visitor is sent to the sign-in page')
  await page.getByLabel('Password').fill('wrong-password-0123456789')
  await page.keyboard.press('Enter')
  t.match(await page.textContent('[role=alert]'), /do not match/, 'a wrong password is refused')
  await page.getByLabel('Password').fill(TOKEN)
  await page.keyboard.press('Enter')
  await page.waitForURL(/\/console$/)
  const cookie = (await browser.cookies()).find((c) => c.name === 'ficus_console')
  t.ok(cookie?.httpOnly, 'the session cookie is HttpOnly')
  t.equal(cookie?.sameSite, 'Strict', 'the session cookie is SameSite=Strict')

  // The matrix: routes by cohort, then expanded to the schools of wave-1.
  const matrix = await page.textContent('main') ?? ''
  for (const text of ['attendance.page', 'timetable.page', 'pilot (1)', 'wave-1 (2)', 'wave-2 (1)']) t.match(matrix, text, `the matrix shows ${text}`)
  await page.getByRole('link', { name: 'wave-1 (2)' }).first().click()
  const row = page.locator('tr', { has: page.getByRole('link', { name: 'attendance.page' }) })
  t.match(await row.textContent(), /new.*legacy/s, 'school-a new, school-b legacy on the attendance page')

  // Open school-b's cell from the matrix and move it to new, with the preview first.
  await page.goto(`${consoleUrl}?q=school-b`)
  await row.locator('td.cell a').first().click()
  t.match(page.url(), /\/console\/cell\?route=attendance\.page&school=school-b/)
  t.match(await page.textContent('main'), /Why:.*legacy: none of the 1 strategies matched \(flag attendance-page\)/s, 'the cell says why, in words')
  await page.getByRole('button', { name: 'Move to new…' }).click()
  const preview = await page.textContent('[role=status]') ?? ''
  t.match(preview, 'This moves 1 school to new: school-b.', 'the preview names the school it moves')
  t.match(preview, 'None of it has a shadow mismatch in the last 24 h.')
  t.match(preview, 'No open breaker.')
  t.equal(await servedBy(origin, 'school-b'), 'legacy', 'nothing is saved by a preview')
  await page.getByRole('button', { name: 'Save' }).click()
  const savedAt = performance.now()
  await waitForSide(origin, 'school-b', 'new', 5_000)
  const flipMs = Math.round(performance.now() - savedAt)
  t.ok(flipMs <= FLIP_BOUND_MS, `school-b served by new ${flipMs} ms after saving (bound ${FLIP_BOUND_MS} ms)`)
  t.equal(await servedBy(origin, 'school-a'), 'new', 'school-a stays on new')
  t.equal(await servedBy(origin, 'school-c'), 'legacy', 'school-c stays on legacy')
  t.match(await page.textContent('[role=status]'), /Saved: school-b to new/)

  // The file keeps its other flags and fields.
  const written = JSON.parse(readFileSync(flagsFile, 'utf8'))
  t.equal(written.features.length, 4, 'every flag is kept')
  t.equal(written.features[0].description, 'The new attendance page; migrated for school-a only.', 'unknown fields are kept')
  t.same(written.features[0].strategies[0].constraints[0].values, ['school-a', 'school-b'], 'the move added school-b to the tenantId list')

  // The history shows it, and reverting puts the previous state back.
  await page.getByRole('link', { name: 'History' }).click()
  const history = await page.textContent('main') ?? ''
  t.match(history, /admin.*attendance\.page · attendance-page.*school-b to new/s, 'the history says who moved what')
  await page.getByRole('button', { name: 'Revert…' }).first().click()
  t.match(await page.textContent('[role=status]'), 'This moves 1 school back to legacy: school-b.', 'the revert has a preview')
  await page.getByRole('button', { name: 'Save' }).click()
  await waitForSide(origin, 'school-b', 'legacy', 5_000)
  t.match(await page.textContent('main'), /revert of "school-b to new"/, 'the revert is in the history')
  t.same(JSON.parse(readFileSync(flagsFile, 'utf8')).features[0].strategies[0].constraints[0].values, ['school-a'], 'the flag is as before')

  // Shadow on for school-c: its legacy answers are compared with the new handler's, and the cell shows it.
  await page.goto(`${consoleUrl}/cell?route=attendance.page&school=school-c`)
  await page.getByRole('button', { name: 'Shadow on…' }).click()
  t.match(await page.textContent('[role=status]'), 'Shadow starts for 1: school-c.', 'the shadow preview')
  await page.getByRole('button', { name: 'Save' }).click()
  const shadowUntil = performance.now() + 5_000
  let compared = ''
  while (performance.now() < shadowUntil && !/[1-9]\d* mismatch/.test(compared)) {
    t.equal(await servedBy(origin, 'school-c'), 'legacy', 'shadow never changes who answers')
    await page.reload()
    compared = await page.locator('p', { hasText: 'Shadow' }).first().textContent() ?? ''
  }
  t.match(compared, /\d+ match, [1-9]\d* mismatch/, 'the cell counts the shadow comparisons (the demo pages differ)')
  t.match(await page.textContent('main'), /Last mismatches.*GET \/attendance · mismatch · legacy \d{3}, new \d{3}/s, 'and lists the mismatches')
  await page.getByRole('button', { name: 'Shadow off' }).click()
  t.match(await page.textContent('[role=status]'), /Saved: shadow off for school-c/, 'shadow off is one click')

  // A share of schools, previewed by the engine: 100% of the timetable is every school.
  await page.goto(`${consoleUrl}/route?route=timetable.page`)
  await page.getByLabel('Share of all schools, sticky by school').check()
  await page.getByLabel('Percentage').fill('100')
  await page.getByRole('button', { name: 'Preview' }).click()
  t.match(await page.textContent('[role=status]'), 'This moves 3 schools to new: school-a, school-b, school-c.', 'a percentage preview names the schools it moves')
  await page.getByRole('link', { name: 'Cancel' }).click()

  // Scheduled: school-c's timetable to new in three seconds, applied by this process at its time.
  await page.goto(`${consoleUrl}/cell?route=timetable.page&school=school-c`)
  await page.getByRole('button', { name: 'Move to new…' }).click()
  await page.getByLabel('At (UTC)').fill(new Date(Date.now() + 3_000).toISOString().slice(0, 19))
  await page.getByRole('button', { name: 'Schedule' }).click()
  t.match(await page.textContent('[role=status]'), /Scheduled: school-c to new at/, 'the schedule says what and when')
  t.match(await page.locator('tbody tr').first().textContent(), /pending/)
  const timetable = async (): Promise<string | undefined> => {
    const response = await request(`${origin}/timetable`, { headers: { host: 'school-c.localhost' } })
    await response.body.dump()
    return response.headers['x-served-by'] as string | undefined
  }
  t.equal(await timetable(), 'legacy', 'not before its time')
  const scheduledUntil = performance.now() + 10_000
  while (await timetable() !== 'new' && performance.now() < scheduledUntil) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await timetable(), 'new', 'applied at its time')
  await page.reload()
  t.match(await page.locator('tbody tr').first().textContent(), /applied: 1 school\(s\) changed side/, 'the schedule reports it applied')

  // Keyboard: sign-out is reachable and works; after it the console asks to sign in again.
  await page.getByRole('button', { name: 'Sign out' }).focus()
  await page.keyboard.press('Enter')
  await page.waitForURL(/sign-in$/)
  await page.goto(consoleUrl)
  t.match(page.url(), /sign-in$/, 'signed out')
})

t.test('changes need the session\'s CSRF token and a session', async (t) => {
  const { flagsFile, serving } = await startDemo(t)
  const admin = String(serving.admin)
  const form = 'route=attendance.page&action=kill'
  const anonymous = await request(`${admin}/console/apply`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form })
  t.equal(anonymous.statusCode, 401, 'no session: refused')
  t.notMatch(await anonymous.body.text(), /at .*\.ts|node_modules|\/work\//, 'no internals in the page')
  const signIn = await request(`${admin}/console/sign-in`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `user=admin&password=${TOKEN}` })
  await signIn.body.dump()
  const cookie = String(signIn.headers['set-cookie']).split(';')[0] as string
  const forged = await request(`${admin}/console/apply`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `${form}&csrf=guess` })
  t.equal(forged.statusCode, 403, 'a wrong CSRF token: refused')
  await forged.body.dump()
  const page = await (await request(`${admin}/console`, { headers: { cookie } })).body.text()
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? ''
  const otherOrigin = await request(`${admin}/console/apply`, { method: 'POST', headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body: `${form}&csrf=${csrf}` })
  t.equal(otherOrigin.statusCode, 403, 'another origin: refused')
  await otherOrigin.body.dump()
  t.same(JSON.parse(readFileSync(flagsFile, 'utf8')), JSON.parse(readFileSync(join(PROJECT_ROOT, 'demo/flags.json'), 'utf8')), 'nothing was changed')
  const bearer = await request(`${admin}/decisions?tenant=school-a`)
  t.equal(bearer.statusCode, 401, 'the rest of the admin listener still needs the bearer token')
  await bearer.body.dump()
  for (const path of ['/console/../decisions?tenant=school-a', '/console/%2e%2e/decisions?tenant=school-a', '/console?x=/../decisions', '/consolex']) {
    const sneaky = await request(`${admin}${path}`, { headers: { cookie } })
    const body = await sneaky.body.text()
    t.notMatch(body, /"routes"/, `${path}: no admin data through the console's own sign-in`)
  }
})
