// Test kit for pages: Debian's Chromium (/usr/bin/chromium) driven by playwright-core, headless,
// with a fresh profile (--user-data-dir) per browser; closed at teardown.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import type { TeardownHost } from './recording-legacy.ts'

export const CHROMIUM = '/usr/bin/chromium'

export async function startChromium (t: TeardownHost): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'ficus-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(async () => {
    await browser.close()
    rmSync(profile, { recursive: true, force: true })
  })
  return browser
}
