// The composition root (proxy/create-ficus.ts): with nothing brought it opens the registry, the
// flags and the rest itself, serves, reports readiness on the admin listener, and its close
// stops what it opened; what a caller brings stays the caller's, running after that close.
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import type { Test } from 'tap'
import { request } from 'undici'
import { Flags } from '../../flags/flags.ts'
import { parseConfig, type Config } from '../../proxy/config.ts'
import { createFicus } from '../../proxy/create-ficus.ts'
import { ATTENDANCE_FLAG, ATTENDANCE_ROUTE, DEFAULT_TENANTS, flagsOnFor, writeJson, type LogLine } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, waitFor } from '../helpers/recording-legacy.ts'

const POLL_MS = 100
// Several poll periods: long enough for a watcher that still runs to see an edit.
const QUIET_MS = 1_000

async function setUp (t: Test): Promise<{ config: Config, flagsFile: string, logs: LogLine[], logger: ReturnType<typeof pino> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-create-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  const tenantsFile = join(dir, 'tenants.json')
  writeJson(flagsFile, flagsOnFor(['school-a']))
  writeJson(tenantsFile, DEFAULT_TENANTS)
  const legacy = await startRecordingLegacy(t)
  const config = parseConfig({ LEGACY_URL: legacy.url, TENANTS_FILE: tenantsFile, FLAGS_FILE: flagsFile, FLAGS_POLL_MS: String(POLL_MS), LOG_LEVEL: 'info', PREWARM_LEGACY_CONNECTIONS: '0' })
  const logs: LogLine[] = []
  const logger = pino({ level: 'info' }, new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      callback()
    }
  }))
  return { config, flagsFile, logs, logger }
}

const reloads = (logs: readonly LogLine[]): number => logs.filter((line) => line.msg === 'flags file reloaded').length

t.test('with nothing brought, ficus opens its parts, serves and is ready, and close stops what it opened', async (t) => {
  const { config, flagsFile, logs, logger } = await setUp(t)
  const ficus = await createFicus(config, { logger, routes: [ATTENDANCE_ROUTE], processMetrics: false, console: false })
  let closed = false
  t.teardown(async () => { if (!closed) await ficus.close() })
  await ficus.app.listen({ port: 0, host: '127.0.0.1' })
  await ficus.admin.listen({ port: 0, host: '127.0.0.1' })

  const origin = `http://127.0.0.1:${(ficus.app.server.address() as AddressInfo).port}`
  const answer = await request(`${origin}/attendance`, { headers: { host: 'school-a.localhost' } })
  t.equal(answer.statusCode, 200)
  t.equal(answer.headers['x-served-by'], 'new', 'the flags file it opened decided')
  await answer.body.dump()

  const ready = await request(`http://127.0.0.1:${(ficus.admin.server.address() as AddressInfo).port}/readyz`)
  const body = await ready.body.json() as { checks: Record<string, unknown> }
  t.same(Object.keys(body.checks), ['flags', 'tenants', 'prewarm'], 'the readiness checks main.ts serves')

  writeJson(flagsFile, flagsOnFor(['school-a', 'school-b']))
  await waitFor(() => reloads(logs) === 1, 5_000, 'the flags file it opened to be re-read')
  await ficus.close()
  closed = true
  writeJson(flagsFile, flagsOnFor([]))
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS))
  t.equal(reloads(logs), 1, 'after close, its flags file is no longer watched')
})

t.test('what the caller brings is the caller\'s: still running after close', async (t) => {
  const { config, flagsFile, logs, logger } = await setUp(t)
  const flags = await Flags.fromFile(flagsFile, logger, POLL_MS)
  t.teardown(() => flags.close())
  const ficus = await createFicus(config, { logger, flags, routes: [ATTENDANCE_ROUTE], sessions: false, processMetrics: false, console: false })
  await ficus.close()

  writeJson(flagsFile, flagsOnFor(['school-b'], ATTENDANCE_FLAG))
  await waitFor(() => reloads(logs) === 1, 5_000, 'the caller\'s flags to be re-read after close')
  t.equal(flags.isEnabled(ATTENDANCE_FLAG, { tenantId: 'school-b', cohorts: [] }), true, 'the caller\'s flags follow the file')
})
