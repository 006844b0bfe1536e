// The console against a real Unleash server: a move made in the browser goes through Unleash's
// Admin API into the strategy Unleash's UI shows, ficus serves it within 2 s, and a kill switch
// is the environment switched off, as in Unleash's UI.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configureFlag, declareContextFields, declaredRoute, startFicus } from '../helpers/ficus-process.ts'
import { constraintIn, flexibleRollout, startUnleash } from '../helpers/unleash.ts'
import { startChromium } from '../helpers/chromium.ts'
import { hashPassword } from '../../console/passwords.ts'

// A CONSOLE_USERS user (the admin listener stays open to the kit's /readyz polls: no ADMIN_TOKEN).
const PASSWORD = 'correct horse battery staple'
const FLIP_BOUND_MS = 2_000
const attendance = declaredRoute('attendance.page')

const unleash = await startUnleash(t)
await declareContextFields(unleash)

t.test('move school-b to new in the console: Unleash holds the change, ficus serves it within 2 s', async (t) => {
  await configureFlag(unleash, attendance.flag, { enabled: true, strategies: [flexibleRollout({ rollout: 100, stickiness: 'tenantId', groupId: attendance.flag, constraints: [constraintIn('tenantId', ['school-a'])] })] })
  const dir = mkdtempSync(join(tmpdir(), 'ficus-console-unleash-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ficus = await startFicus(t, {
    unleash,
    schools: [{ id: 'school-a', cohorts: ['pilot', 'wave-1'] }, { id: 'school-b', cohorts: ['wave-1'] }, { id: 'school-c', cohorts: ['wave-2'] }],
    env: {
      UNLEASH_ENVIRONMENT: unleash.environment,
      UNLEASH_ADMIN_URL: unleash.url,
      UNLEASH_ADMIN_TOKEN: unleash.adminToken,
      CONSOLE_USERS: `alice:${await hashPassword(PASSWORD)}`,
      CONSOLE_HISTORY_FILE: join(dir, 'history.jsonl'),
      CONSOLE_SCHEDULE_FILE: join(dir, 'schedule.json')
    }
  })
  t.equal((await ficus.get('school-b', attendance.url)).servedBy, 'legacy', 'school-b starts on legacy')

  const browser = await startChromium(t)
  const page = await browser.newPage()
  page.setDefaultTimeout(15_000)
  await page.goto(`${ficus.adminOrigin}/console`)
  await page.getByLabel('User').fill('alice')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.keyboard.press('Enter')
  await page.waitForURL(/\/console$/)
  t.match(await page.textContent('main'), /flags in Unleash \(project default, environment development\)/, 'the matrix says where flags live')

  await page.goto(`${ficus.adminOrigin}/console/cell?route=attendance.page&school=school-b`)
  await page.getByRole('button', { name: 'Move to new…' }).click()
  t.match(await page.textContent('[role=status]'), 'This moves 1 school to new: school-b.')
  await page.getByRole('button', { name: 'Save' }).click()
  const savedAt = performance.now()
  await ficus.waitForSide('school-b', attendance.url, 'new', 10_000)
  const flipMs = Math.round(performance.now() - savedAt)
  t.ok(flipMs <= FLIP_BOUND_MS, `school-b served by new ${flipMs} ms after saving (bound ${FLIP_BOUND_MS} ms; Unleash serves SDKs from a cache about 1 s behind its Admin API)`)
  t.equal((await ficus.get('school-c', attendance.url)).servedBy, 'legacy', 'school-c stays on legacy')

  const strategies = await unleash.admin.listStrategies(attendance.flag, unleash.environment)
  t.equal(strategies.length, 1, 'Unleash still has one strategy: the console edited it rather than adding another')
  t.same(strategies[0]?.constraints?.map((c) => [c.contextName, c.operator, c.values]), [['tenantId', 'IN', ['school-a', 'school-b']]], 'Unleash\'s Admin API shows school-b in the strategy\'s tenantId list')

  // The kill switch of a route with no kill-switch flag of its own: the environment off.
  await page.goto(`${ficus.adminOrigin}/console/route?route=attendance.page`)
  await page.getByRole('button', { name: /Pull the kill switch/ }).click()
  await ficus.waitForSide('school-a', attendance.url, 'legacy', 10_000)
  const feature = await (await fetch(`${unleash.url}/api/admin/projects/default/features/${attendance.flag}`, { headers: { authorization: unleash.adminToken } })).json() as { environments: Array<{ name: string, enabled: boolean }> }
  t.equal(feature.environments.find((env) => env.name === unleash.environment)?.enabled, false, 'Unleash shows the flag off in the environment')
  t.equal((await unleash.admin.listStrategies(attendance.flag, unleash.environment)).length, 1, 'its strategy is kept for when the switch is released')
  await page.getByRole('link', { name: 'History' }).click()
  t.match(await page.locator('tbody tr').first().textContent(), /alice.*kill switch pulled/s, 'the history names the CONSOLE_USERS user')
})
