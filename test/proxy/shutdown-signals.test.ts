// Signals (README "Graceful shutdown"): SIGTERM turns /readyz 503 at once while ficus keeps
// serving (with `Connection: close`) for DRAIN_DELAY_MS, then it exits 0; a second signal
// forces exit 1; WORKERS=2 serves from two processes on one port and stops both on SIGTERM.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'undici'
import { spawnFicus, writeJson, flagsOnFor, DEFAULT_TENANTS, type FicusProcess } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, waitFor, within, type RecordingLegacy, type TeardownHost } from '../helpers/recording-legacy.ts'

const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 20_000

interface Started {
  readonly process: FicusProcess
  readonly legacy: RecordingLegacy
  readonly public: Client
  readonly admin: Client
}

async function start (t: TeardownHost, extraEnv: Record<string, string>, servingLines = 1): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-signals-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeJson(join(dir, 'tenants.json'), DEFAULT_TENANTS)
  // The timetable is a public migrated page: served by the new handler without a sign-in.
  writeJson(join(dir, 'flags.json'), flagsOnFor(['school-a'], 'timetable-page'))
  const legacy = await startRecordingLegacy(t)
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    LEGACY_URL: legacy.url,
    TENANTS_FILE: join(dir, 'tenants.json'),
    FLAGS_FILE: join(dir, 'flags.json'),
    LOG_LEVEL: 'info',
    ...extraEnv
  })
  await waitFor(() => ficus.logs.filter((line) => line.msg === 'ficus is serving').length >= servingLines || ficus.child.exitCode !== null, READY_TIMEOUT_MS, 'ficus is serving')
  const serving = ficus.logs.find((line) => line.msg === 'ficus is serving')
  if (serving === undefined) throw new Error(`ficus exited: ${ficus.stderr()}`)
  const publicClient = new Client(String(serving.public), { headersTimeout: 10_000, bodyTimeout: 10_000 })
  const admin = new Client(String(serving.admin), { headersTimeout: 10_000, bodyTimeout: 10_000 })
  t.teardown(() => Promise.all([publicClient.destroy(), admin.destroy()]))
  return { process: ficus, legacy, public: publicClient, admin }
}

async function readyz (client: Client): Promise<{ status: number, body: { status: string } }> {
  const answer = await client.request({ method: 'GET', path: '/readyz' })
  return { status: answer.statusCode, body: await answer.body.json() as { status: string } }
}

async function exitOf (ficus: FicusProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  return await within(ficus.exited, EXIT_TIMEOUT_MS, 'ficus to exit')
}

t.test('SIGTERM: /readyz 503 at once, still serving with Connection: close during the drain delay, then exit 0', async (t) => {
  const drainDelayMs = 2_000
  const ficus = await start(t, { DRAIN_DELAY_MS: String(drainDelayMs) })
  let ready: Awaited<ReturnType<typeof readyz>> | undefined
  for (let i = 0; i < READY_TIMEOUT_MS / 100 && ready?.status !== 200; i++) {
    ready = await readyz(ficus.admin)
    if (ready.status !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(ready?.status, 200, 'ready before the signal')
  t.equal(ficus.legacy.requests.filter((request) => request.target === '/').length, 4, 'PREWARM_LEGACY_CONNECTIONS (4) requests reached legacy before ready')
  const prewarm = await ficus.process.waitForLog((line) => line.msg === 'pre-warm done', 'pre-warm done', 5_000)
  t.match(prewarm, { steps: { legacy: 'ok' } })

  const before = await ficus.public.request({ method: 'GET', path: '/timetable', headers: { host: 'school-a.localhost' } })
  await before.body.dump()
  t.not(before.headers.connection, 'close', 'keep-alive before the signal')

  const signalled = performance.now()
  ficus.process.child.kill('SIGTERM')
  let draining: Awaited<ReturnType<typeof readyz>> | undefined
  while (draining?.status !== 503 && performance.now() - signalled < drainDelayMs) draining = await readyz(ficus.admin)
  t.equal(draining?.status, 503)
  t.equal(draining?.body.status, 'draining')
  t.ok(performance.now() - signalled < drainDelayMs, '503 well within the drain delay')

  const during = await ficus.public.request({ method: 'GET', path: '/timetable', headers: { host: 'school-a.localhost' } })
  t.equal(during.statusCode, 200, 'still serving while draining')
  t.equal(during.headers.connection, 'close', 'and asking the client to close')
  t.equal(during.headers['x-served-by'], 'new')
  await during.body.dump()
  const legacyDuring = await ficus.public.request({ method: 'GET', path: '/other', headers: { host: 'school-b.localhost' } })
  t.equal(legacyDuring.statusCode, 200)
  t.equal(legacyDuring.headers.connection, 'close', 'legacy answers too')
  await legacyDuring.body.dump()

  t.same(await exitOf(ficus.process), { code: 0, signal: null })
  t.ok(performance.now() - signalled >= drainDelayMs, 'not before the drain delay')
  t.match(ficus.process.logs.find((line) => line.msg === 'stopped'), { forced: false })
})

t.test('a second signal forces exit 1', async (t) => {
  const ficus = await start(t, { DRAIN_DELAY_MS: '10000' })
  ficus.process.child.kill('SIGTERM')
  await ficus.process.waitForLog((line) => line.msg === 'draining: /readyz answers 503, still serving', 'draining', 10_000)
  const second = performance.now()
  ficus.process.child.kill('SIGINT')
  t.same(await exitOf(ficus.process), { code: 1, signal: null })
  t.ok(performance.now() - second < 5_000, 'without waiting for the drain delay')
  t.ok(ficus.process.logs.some((line) => line.msg === 'second signal: exiting now'))
})

t.test('WORKERS=2: two processes serve one port; SIGTERM drains and stops both, exit 0', async (t) => {
  const ficus = await start(t, { WORKERS: '2', DRAIN_DELAY_MS: '300' }, 2)
  const servingLines = ficus.process.logs.filter((line) => line.msg === 'ficus is serving')
  t.equal(new Set(servingLines.map((line) => line.public)).size, 1, 'both workers on the same public address')
  t.equal(new Set(servingLines.map((line) => line.pid)).size, 2, 'two worker processes')

  // Fresh connections, so the cluster's round-robin spreads them.
  for (let i = 0; i < 20; i++) {
    const answer = await ficus.public.request({ method: 'GET', path: '/timetable', headers: { host: 'school-a.localhost', connection: 'close' } })
    t.equal(answer.statusCode, 200)
    await answer.body.dump()
  }
  const servedBy = new Set(ficus.process.logs.filter((line) => line.msg === 'request').map((line) => line.pid))
  t.equal(servedBy.size, 2, 'requests were served by both workers')

  ficus.process.child.kill('SIGTERM')
  t.same(await exitOf(ficus.process), { code: 0, signal: null })
  t.equal(ficus.process.logs.filter((line) => line.msg === 'stopped').length, 2, 'each worker drained and stopped')
  t.ok(ficus.process.logs.some((line) => line.msg === 'all workers stopped'))
})
