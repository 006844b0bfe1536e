// Flags from a file in Unleash's client-features format, evaluated by unleash-client's engine,
// re-read while ficus runs: an edit moves a school within 2 s, a broken edit changes nothing.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULTS } from '../../proxy/config.ts'
import { Flags, type FlagsLogger } from '../../flags/flags.ts'
import { parseClientFeatures } from '../../flags/file-repository.ts'
import { ATTENDANCE_FLAG, flagsOnFor, startProxy, waitFor, writeJson } from '../helpers/proxy-kit.ts'

// The bound: an edit of the flags file takes effect within 2 s, no restart.
const FLIP_BOUND_MS = 2_000
const WAIT_MS = 5_000

const silent: FlagsLogger = { info () {}, warn () {}, error () {} }

function tempFlags (t: { teardown (fn: () => unknown): void }, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-flags-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'flags.json')
  writeJson(path, content)
  return path
}

t.test('editing the flags file moves school-b to new within 2 s, without a restart', async (t) => {
  // The default poll interval, as an operator runs it.
  const proxy = await startProxy(t, { env: { FLAGS_POLL_MS: String(DEFAULTS.FLAGS_POLL_MS) } })
  t.equal((await proxy.send({ path: '/attendance', host: 'school-b.localhost' })).header('x-served-by'), 'legacy')

  const editedAt = performance.now()
  proxy.writeFlags(flagsOnFor(['school-a', 'school-b']))
  let servedBy: string | undefined
  while (servedBy !== 'new' && performance.now() - editedAt < WAIT_MS) {
    servedBy = (await proxy.send({ path: '/attendance', host: 'school-b.localhost' })).header('x-served-by')
    if (servedBy !== 'new') await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const latency = Math.round(performance.now() - editedAt)
  t.comment(`school-b moved to new ${latency} ms after the edit (poll every ${DEFAULTS.FLAGS_POLL_MS} ms)`)
  t.equal(servedBy, 'new', 'school-b is served by new')
  t.ok(latency <= FLIP_BOUND_MS, `within ${FLIP_BOUND_MS} ms (took ${latency} ms)`)
  t.equal((await proxy.send({ path: '/attendance', host: 'school-a.localhost' })).header('x-served-by'), 'new', 'school-a unchanged')
})

t.test('a broken edit keeps the last good flags and logs why', async (t) => {
  const proxy = await startProxy(t)
  const served = async (school: string): Promise<string | undefined> =>
    (await proxy.send({ path: '/attendance', host: `${school}.localhost` })).header('x-served-by')
  const rejections = (): number => proxy.logs.filter((line) => line.msg.includes('flags file rejected')).length

  proxy.writeFlags('{ "version": 2, "features": [ { "name": "attendance-page", ')
  await waitFor(() => rejections() === 1, WAIT_MS, 'the invalid JSON to be logged')
  t.match(proxy.logs.find((line) => line.msg.includes('flags file rejected'))?.err, /not valid JSON/)
  t.equal(await served('school-a'), 'new', 'invalid JSON: school-a keeps new')
  t.equal(await served('school-b'), 'legacy', 'invalid JSON: school-b keeps legacy')

  proxy.writeFlags({ version: 2, features: [{ name: ATTENDANCE_FLAG, enabled: 'yes', strategies: {} }] })
  await waitFor(() => rejections() === 2, WAIT_MS, 'the invalid shape to be logged')
  t.match(proxy.logs.filter((line) => line.msg.includes('flags file rejected'))[1]?.err, /flag "attendance-page".*"enabled" must be true or false/)
  t.equal(await served('school-a'), 'new', 'invalid shape: school-a keeps new')
  t.equal(await served('school-b'), 'legacy', 'invalid shape: school-b keeps legacy')

  proxy.writeFlags({ version: 2, features: [] })
  await waitFor(() => proxy.logs.some((line) => line.msg === 'flags file reloaded' && line.flags === 0), WAIT_MS, 'the next good edit')
  t.equal(await served('school-a'), 'legacy', 'a good edit after a broken one still applies')
  t.equal(rejections(), 2, 'each broken edit logged once')
})

t.test('flags are evaluated by the Unleash engine: constraints, rollouts, disabled and unknown flags', async (t) => {
  const path = tempFlags(t, {
    version: 2,
    features: [
      { name: 'for-pilot', enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [{ contextName: 'tenantId', operator: 'IN', values: ['school-a'] }] }] },
      { name: 'nobody', enabled: true, strategies: [{ name: 'flexibleRollout', parameters: { rollout: '0', stickiness: 'tenantId', groupId: 'nobody' }, constraints: [] }] },
      { name: 'everybody', enabled: true, strategies: [{ name: 'flexibleRollout', parameters: { rollout: '100', stickiness: 'tenantId', groupId: 'everybody' }, constraints: [] }] },
      { name: 'switched-off', enabled: false, strategies: [{ name: 'default', parameters: {}, constraints: [] }] },
      { name: 'segmented', enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [], segments: [7] }] }
    ],
    segments: [{ id: 7, name: 'wave', constraints: [{ contextName: 'tenantId', operator: 'IN', values: ['school-b'] }] }]
  })
  const flags = await Flags.fromFile(path, silent, 50)
  t.teardown(() => flags.close())
  const a = { tenantId: 'school-a', cohorts: [], route: 'r' }
  const b = { tenantId: 'school-b', cohorts: [], route: 'r' }
  t.ok(flags.isReady())
  t.equal(flags.source, `file ${path}`)
  t.same([flags.isEnabled('for-pilot', a), flags.isEnabled('for-pilot', b)], [true, false])
  t.same([flags.isEnabled('nobody', a), flags.isEnabled('everybody', a)], [false, true])
  t.equal(flags.isEnabled('switched-off', a), false)
  t.equal(flags.isEnabled('no-such-flag', a), false)
  t.same([flags.isEnabled('segmented', a), flags.isEnabled('segmented', b)], [false, true])
})

t.test('a flags file that cannot be read at start fails the start: there is nothing to serve from', async (t) => {
  await t.rejects(Flags.fromFile(tempFlags(t, '{ broken'), silent), /not valid JSON/)
  await t.rejects(Flags.fromFile(tempFlags(t, { features: 'none' }), silent), /expected Unleash client features/)
  await t.rejects(Flags.fromFile(join(tmpdir(), 'ficus-no-such-dir', 'flags.json'), silent), /ENOENT/)
})

t.test('every problem of a flags file is reported at once, naming the flag', async (t) => {
  let message = ''
  try {
    parseClientFeatures({
      version: 2,
      features: [
        { name: 'ok', enabled: true, strategies: [] },
        { name: 'ok', enabled: true, strategies: [] },
        { name: 'no-enabled', strategies: [] },
        { name: 'bad-strategies', enabled: true, strategies: 'default' },
        { name: 'bad-strategy', enabled: true, strategies: [{ parameters: {} }, { name: 'default', constraints: {} }] },
        { enabled: true, strategies: [] }
      ],
      segments: [{ id: 'one' }]
    })
  } catch (error) {
    message = (error as Error).message
  }
  t.match(message, /flag "ok" is listed twice/)
  t.match(message, /flag "no-enabled": "enabled" must be true or false/)
  t.match(message, /flag "bad-strategies": "strategies" must be an array/)
  t.match(message, /flag "bad-strategy": strategies\[0\]\.name must be a string/)
  t.match(message, /flag "bad-strategy": strategies\[1\]\.constraints must be an array/)
  t.match(message, /features\[5\]\.name must be a non-empty string/)
  t.match(message, /segments must be objects/)
})
