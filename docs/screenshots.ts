// Takes the README's console screenshots from the demo as `npm start` serves it (on free ports,
// with a copy of the demo's flags): school-b put in shadow on the attendance page, some traffic,
// then the matrix, school-b's cell, the preview of moving it to new, and the matrix after.
//   node docs/screenshots.ts        (writes docs/console-*.png)
import { spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { request } from 'undici'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const OUT = fileURLToPath(new URL('./', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'ficus-screenshots-'))
const flagsFile = join(dir, 'flags.json')
copyFileSync(join(ROOT, 'demo/flags.json'), flagsFile)

const child = spawn(process.execPath, [join(ROOT, 'proxy/main.ts')], {
  cwd: ROOT,
  env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile, CONSOLE_HISTORY_FILE: join(dir, 'history.jsonl'), CONSOLE_SCHEDULE_FILE: join(dir, 'schedule.json'), ACCESS_LOG: 'false', DRAIN_DELAY_MS: '0' },
  stdio: ['ignore', 'pipe', 'inherit']
})
const lines: Array<Record<string, unknown>> = []
let partial = ''
child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
  const parts = (partial + chunk).split('\n')
  partial = parts.pop() ?? ''
  for (const line of parts) try { lines.push(JSON.parse(line)) } catch {}
})
const waitFor = async (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
  for (let i = 0; i < 300; i++) {
    const found = lines.find(match)
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('ficus did not start')
}

const profile = mkdtempSync(join(tmpdir(), 'ficus-chromium-'))
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
try {
  const password = String((await waitFor((line) => typeof line.password === 'string')).password)
  const serving = await waitFor((line) => line.msg === 'ficus is serving')
  const origin = String(serving.public)
  const consoleUrl = String(serving.console)
  const traffic = async (): Promise<void> => {
    for (let i = 0; i < 15; i++) {
      for (const school of ['school-a', 'school-b', 'school-c']) {
        for (const path of ['/attendance', '/timetable']) await (await request(`${origin}${path}`, { headers: { host: `${school}.localhost` } })).body.dump()
      }
    }
  }
  const page = await browser.newPage()
  await page.goto(consoleUrl)
  await page.getByLabel('Password').fill(password)
  await page.keyboard.press('Enter')
  await page.waitForURL(/\/console$/)
  await page.goto(`${consoleUrl}/cell?route=attendance.page&school=school-b`)
  await page.getByRole('button', { name: 'Shadow on…' }).click()
  await page.getByRole('button', { name: 'Save' }).click()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  await traffic()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  await page.goto(consoleUrl)
  await page.screenshot({ path: join(OUT, 'console-matrix.png'), fullPage: true })
  await page.goto(`${consoleUrl}/cell?route=attendance.page&school=school-b`)
  // The newest mismatch's diff, open.
  const mismatch = page.locator('h2:has-text("Last mismatches") + details')
  if (await mismatch.count() > 0) await mismatch.locator('summary').click()
  await page.screenshot({ path: join(OUT, 'console-cell.png'), fullPage: true })
  await page.getByRole('button', { name: 'Move to new…' }).click()
  await page.screenshot({ path: join(OUT, 'console-preview.png'), fullPage: true })
  await page.getByRole('button', { name: 'Save' }).click()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  await page.goto(`${consoleUrl}?cohort=wave-1`)
  await page.screenshot({ path: join(OUT, 'console-wave-1.png'), fullPage: true })
  process.stdout.write(`screenshots written to ${OUT}\n`)
} finally {
  await browser.close()
  child.kill('SIGTERM')
  rmSync(profile, { recursive: true, force: true })
  rmSync(dir, { recursive: true, force: true })
}
