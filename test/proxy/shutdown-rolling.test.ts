// Rolling restart under load (README "Graceful shutdown"): two ficus processes behind a test
// balancer take a steady load; one gets SIGTERM and is replaced. No request fails, no connection
// is reset, and a 20 MB download in flight through the stopping process completes intact.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'undici'
import { spawnFicus, writeJson, flagsOnFor, DEFAULT_TENANTS, type FicusProcess } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, waitFor, within, type LegacyHandler, type TeardownHost } from '../helpers/recording-legacy.ts'
import { TestBalancer } from '../helpers/balancer.ts'
import { startLoad } from '../helpers/load-loop.ts'
import { parsePrometheusText, sampleSum } from '../helpers/prometheus-text.ts'

const DOWNLOAD_BYTES = 20 * 1024 * 1024
const CHUNK_BYTES = 64 * 1024
const CHUNK_PAUSE_MS = 6
const DRAIN_DELAY_MS = 1_000
const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 30_000
const LOAD_RATE = 150

const DOWNLOAD = Buffer.alloc(DOWNLOAD_BYTES)
for (let i = 0; i < DOWNLOAD_BYTES; i++) DOWNLOAD[i] = (i * 31 + (i >> 13)) & 0xff
const DOWNLOAD_SHA256 = createHash('sha256').update(DOWNLOAD).digest('hex')

/** Small pages at once; /download streams 20 MB in paced chunks (a few seconds). */
const legacyHandler: LegacyHandler = async ({ req, res, record }) => {
  await record.ended
  if (req.url === '/download') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DOWNLOAD_BYTES })
    for (let at = 0; at < DOWNLOAD_BYTES && !res.destroyed; at += CHUNK_BYTES) {
      if (!res.write(DOWNLOAD.subarray(at, at + CHUNK_BYTES))) await new Promise((resolve) => res.once('drain', resolve))
      await new Promise((resolve) => setTimeout(resolve, CHUNK_PAUSE_MS))
    }
    return void res.end()
  }
  const text = `legacy ${req.url ?? ''}`
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

interface Started {
  readonly process: FicusProcess
  readonly origin: string
  readonly adminOrigin: string
}

async function startOne (t: TeardownHost, env: Record<string, string>): Promise<Started> {
  const ficus = spawnFicus(t, env)
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving', READY_TIMEOUT_MS)
  return { process: ficus, origin: String(serving.public), adminOrigin: String(serving.admin) }
}

t.test('SIGTERM on one of two processes under load: zero failures, zero resets, the download completes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-rolling-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tenantsFile = join(dir, 'tenants.json')
  const flagsFile = join(dir, 'flags.json')
  writeJson(tenantsFile, DEFAULT_TENANTS)
  // The timetable is a public migrated page: served by the new handler without a sign-in.
  writeJson(flagsFile, flagsOnFor(['school-a'], 'timetable-page'))
  const legacy = await startRecordingLegacy(t, legacyHandler)
  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    LEGACY_URL: legacy.url,
    TENANTS_FILE: tenantsFile,
    FLAGS_FILE: flagsFile,
    DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
    SHUTDOWN_TIMEOUT_MS: '20000',
    LOG_LEVEL: 'info'
  }

  const [a, b] = await Promise.all([startOne(t, env), startOne(t, env)]) as [Started, Started]
  const balancer = new TestBalancer(t)
  await balancer.listen()
  balancer.add('a', a.origin, a.adminOrigin)
  balancer.add('b', b.origin, b.adminOrigin)
  await waitFor(() => balancer.isReady('a') && balancer.isReady('b'), READY_TIMEOUT_MS, 'both processes ready behind the balancer')

  // school-a's /timetable is migrated (new handler); the rest is forwarded to legacy.
  const load = startLoad({
    origin: balancer.origin,
    workers: 6,
    ratePerSecond: LOAD_RATE,
    targets: [
      { host: 'school-a.localhost', path: '/timetable' },
      { host: 'school-b.localhost', path: '/attendance' },
      { host: 'school-a.localhost', path: '/reports?term=2' }
    ]
  })
  t.teardown(() => load.stop())
  await new Promise((resolve) => setTimeout(resolve, 1_000))

  // The download goes straight to the process that is about to stop.
  const downloader = new Client(a.origin, { headersTimeout: 30_000, bodyTimeout: 30_000 })
  t.teardown(() => downloader.destroy())
  const download = await downloader.request({ method: 'GET', path: '/download', headers: { host: 'school-b.localhost' } })
  const hash = createHash('sha256')
  let received = 0
  const downloaded = (async () => {
    for await (const chunk of download.body) {
      hash.update(chunk as Buffer)
      received += (chunk as Buffer).length
    }
  })()
  await waitFor(() => received >= 1024 * 1024, 10_000, 'the first MiB of the download')

  const sigtermAt = Date.now()
  a.process.child.kill('SIGTERM')
  // The orchestrator starts the replacement at once.
  const c = await startOne(t, env)
  balancer.add('c', c.origin, c.adminOrigin)
  await waitFor(() => balancer.isReady('c'), READY_TIMEOUT_MS, 'the replacement to be ready')

  const exit = await within(a.process.exited, EXIT_TIMEOUT_MS, 'a to exit')
  t.same(exit, { code: 0, signal: null }, 'the stopped process exits 0')
  await downloaded
  t.equal(received, DOWNLOAD_BYTES, 'all 20 MB arrived')
  t.equal(hash.digest('hex'), DOWNLOAD_SHA256, 'intact')
  t.equal(download.statusCode, 200)

  await new Promise((resolve) => setTimeout(resolve, 1_000))
  const result = await load.stop()
  const aNotReady = balancer.stats.readinessChanges.find((change) => change.backend === 'a' && !change.ready)
  t.comment(`load: ${JSON.stringify(result)}`)
  t.comment(`balancer: ${JSON.stringify({ forwarded: balancer.stats.forwarded, connectionClose: balancer.stats.connectionClose, upstreamErrors: balancer.stats.upstreamErrors, noBackend: balancer.stats.noBackend })}`)
  t.comment(`a: /readyz 503 seen ${aNotReady === undefined ? 'never' : `${aNotReady.at - sigtermAt} ms`} after SIGTERM; exit ${JSON.stringify(exit)}; download ${received} bytes`)

  t.ok(result.sent > LOAD_RATE * 2, `a steady load was sent (${result.sent} requests)`)
  t.equal(result.ok, result.sent, 'zero failed requests')
  t.same(result.errors, {}, 'zero connection errors at the client')
  t.same(balancer.stats.upstreamErrors, [], 'zero resets or errors between the balancer and ficus')
  t.equal(balancer.stats.noBackend, 0)
  t.ok((balancer.stats.forwarded.a ?? 0) > 0 && (balancer.stats.forwarded.c ?? 0) > 0, 'both the stopped process and its replacement served')
  t.ok(aNotReady !== undefined && aNotReady.at - sigtermAt < DRAIN_DELAY_MS, '/readyz turned 503 within the drain delay')

  const stopped = a.process.logs.find((line) => line.msg === 'stopped')
  t.match(stopped, { forced: false })
  const order = a.process.logs.map((line) => line.msg).filter((msg) => ['draining: /readyz answers 503, still serving', 'no longer accepting: finishing the requests in flight', 'stopped'].includes(msg))
  t.same(order, ['draining: /readyz answers 503, still serving', 'no longer accepting: finishing the requests in flight', 'stopped'])

  // The replacement's /metrics, from a real process (process metrics included), parses strictly.
  const admin = new Client(c.adminOrigin)
  t.teardown(() => admin.destroy())
  const scrape = await admin.request({ method: 'GET', path: '/metrics' })
  const metrics = parsePrometheusText(await scrape.body.text())
  t.ok(sampleSum(metrics, 'ficus_requests_total') > 0, 'the replacement counted requests')
  t.ok(metrics.has('ficus_process_cpu_user_seconds_total'), 'process metrics are there')
  t.equal(metrics.get('ficus_draining')?.samples[0]?.value, 0)
})
