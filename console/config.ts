// Settings of the migration console, parsed from the environment that proxy/config.ts hands over.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readSet, type Env } from '../config/env.ts'
import { parseFreezeWindows, type FreezeWindow } from './freeze.ts'
import { isPasswordHash } from './passwords.ts'

export interface ConsoleUser {
  readonly name: string
  readonly passwordHash: string
}

export interface ConsoleConfig {
  /** CONSOLE_USERS: who may sign in with a password (besides the admin token). */
  readonly users: readonly ConsoleUser[]
  /** Set with UNLEASH_ADMIN_URL: moves go through Unleash's Admin API. */
  readonly unleashAdmin: { readonly url: string, readonly token: string, readonly project: string } | undefined
  readonly freezeWindows: readonly FreezeWindow[]
  /** Where changes are recorded without a control database. */
  readonly historyFile: string
  /** Where scheduled changes wait without a control database. */
  readonly scheduleFile: string
}

export function parseConsoleConfig (env: Env, problems: string[]): ConsoleConfig {
  const raw = (name: string): string | undefined => readSet(env, name, problems)
  const users: ConsoleUser[] = []
  for (const entry of (raw('CONSOLE_USERS') ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    const colon = entry.indexOf(':')
    const name = entry.slice(0, colon)
    const passwordHash = entry.slice(colon + 1)
    if (colon <= 0 || !/^[A-Za-z0-9._@-]+$/.test(name) || !isPasswordHash(passwordHash)) {
      problems.push('CONSOLE_USERS must list name:hash pairs separated by commas, each hash printed by `ficus console-password`, e.g. CONSOLE_USERS=alice:scrypt$16384$8$1$...$...')
      break
    }
    users.push({ name, passwordHash })
  }
  const adminUrl = raw('UNLEASH_ADMIN_URL')
  const adminToken = raw('UNLEASH_ADMIN_TOKEN')
  // Read even without UNLEASH_ADMIN_URL, so that a blank value is reported either way.
  const project = raw('UNLEASH_PROJECT') ?? 'default'
  let unleashAdmin: ConsoleConfig['unleashAdmin']
  if (adminUrl !== undefined) {
    let url: URL | undefined
    try { url = new URL(adminUrl) } catch {}
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.push('UNLEASH_ADMIN_URL must be the Unleash server\'s base http(s) URL, e.g. UNLEASH_ADMIN_URL=http://unleash.internal:4242')
    } else if (adminToken === undefined) {
      problems.push('UNLEASH_ADMIN_TOKEN is required with UNLEASH_ADMIN_URL: an admin API token, e.g. UNLEASH_ADMIN_TOKEN=*:*.8f3a...')
    } else {
      unleashAdmin = Object.freeze({ url: (url.origin + url.pathname).replace(/\/(api\/?)?$/, ''), token: adminToken, project })
    }
  } else if (adminToken !== undefined) {
    problems.push('UNLEASH_ADMIN_TOKEN is set but UNLEASH_ADMIN_URL is not, e.g. UNLEASH_ADMIN_URL=http://unleash.internal:4242')
  }
  const freeze = parseFreezeWindows(raw('FREEZE_WINDOWS') ?? '')
  for (const problem of freeze.problems) problems.push(`FREEZE_WINDOWS: ${problem}, e.g. FREEZE_WINDOWS=Mon-Fri 08:15-09:45 Europe/London; 2026-06-10 Europe/London`)
  return Object.freeze({
    users: Object.freeze(users),
    unleashAdmin,
    freezeWindows: Object.freeze(freeze.windows),
    historyFile: raw('CONSOLE_HISTORY_FILE') ?? join(tmpdir(), 'ficus-console-history.jsonl'),
    scheduleFile: raw('CONSOLE_SCHEDULE_FILE') ?? join(tmpdir(), 'ficus-console-schedule.json')
  })
}
