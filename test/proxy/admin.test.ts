// The admin listener: liveness, readiness (flags and tenants loaded, not draining), an optional
// bearer token, and never on the public port.
import t from 'tap'
import { request } from 'undici'
import { Unleash } from 'unleash-client'
import { Flags, type FlagsLogger } from '../../flags/flags.ts'
import type { ReadinessCheck } from '../../proxy/admin.ts'
import { startAdmin, startProxy, type ProxyKit } from '../helpers/proxy-kit.ts'

const silent: FlagsLogger = { info () {}, warn () {}, error () {} }
const TOKEN = 'a-long-enough-admin-token'

// The checks proxy/main.ts gives the admin listener.
function checksOf (flags: Flags, proxy: ProxyKit): ReadinessCheck[] {
  return [
    { name: 'flags', check: () => ({ ready: flags.isReady(), detail: flags.status() }) },
    { name: 'tenants', check: () => ({ ready: proxy.registry.size > 0, detail: { source: proxy.registry.source, count: proxy.registry.size } }) }
  ]
}

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: unknown, headers: Record<string, unknown> }> {
  const response = await request(url, { headers })
  const text = await response.body.text()
  return { status: response.statusCode, body: text.startsWith('{') ? JSON.parse(text) : text, headers: response.headers }
}

async function loadedFlags (t: { teardown (fn: () => unknown): void }, proxy: ProxyKit): Promise<Flags> {
  const flags = await Flags.fromFile(proxy.flagsFile, silent)
  t.teardown(() => flags.close())
  return flags
}

function unstartedFlags (t: { teardown (fn: () => unknown): void }): Flags {
  const unleash = new Unleash({ appName: 'ficus-test', url: 'http://flags.invalid/', disableMetrics: true, disableAutoStart: true, skipInstanceCountWarning: true })
  t.teardown(() => unleash.destroy())
  return new Flags(unleash, 'not loaded', silent)
}

t.test('/livez answers 200 while the process runs', async (t) => {
  const proxy = await startProxy(t)
  const admin = await startAdmin(t, { checks: checksOf(await loadedFlags(t, proxy), proxy) })
  const live = await get(`${admin.origin}/livez`)
  t.equal(live.status, 200)
  t.same(live.body, { status: 'alive' })
})

t.test('/readyz answers 200 once flags and tenants are loaded', async (t) => {
  const proxy = await startProxy(t)
  const admin = await startAdmin(t, { checks: checksOf(await loadedFlags(t, proxy), proxy) })
  const ready = await get(`${admin.origin}/readyz`)
  t.equal(ready.status, 200)
  t.match(ready.body, { status: 'ready', checks: { flags: { ready: true }, tenants: { ready: true, detail: { count: 4 } } } })
})

t.test('/readyz answers 503 with the failing check while flags are not loaded', async (t) => {
  const proxy = await startProxy(t)
  const admin = await startAdmin(t, { checks: checksOf(unstartedFlags(t), proxy) })
  const ready = await get(`${admin.origin}/readyz`)
  t.equal(ready.status, 503)
  t.match(ready.body, { status: 'not ready', checks: { flags: { ready: false }, tenants: { ready: true } } })
})

t.test('/readyz answers 503 once draining, even with everything loaded', async (t) => {
  const proxy = await startProxy(t)
  const admin = await startAdmin(t, { checks: checksOf(await loadedFlags(t, proxy), proxy) })
  admin.readiness.startDraining()
  const ready = await get(`${admin.origin}/readyz`)
  t.equal(ready.status, 503)
  t.match(ready.body, { status: 'draining' })
  t.equal((await get(`${admin.origin}/livez`)).status, 200, 'still alive while draining')
})

t.test('with ADMIN_TOKEN set, admin routes need the bearer token', async (t) => {
  const proxy = await startProxy(t)
  const admin = await startAdmin(t, { token: TOKEN, checks: checksOf(await loadedFlags(t, proxy), proxy) })
  for (const path of ['/livez', '/readyz']) {
    const none = await get(`${admin.origin}${path}`, { accept: 'application/json' })
    t.equal(none.status, 401, `${path} without a token`)
    t.equal(none.headers['www-authenticate'], 'Bearer')
    t.match(none.body, { error: { code: 'FICUS_ERR_ADMIN_UNAUTHORIZED' } })
    t.equal((await get(`${admin.origin}${path}`, { authorization: `Bearer ${TOKEN}x` })).status, 401, `${path} with a wrong token`)
    t.equal((await get(`${admin.origin}${path}`, { authorization: TOKEN })).status, 401, `${path} without the Bearer scheme`)
    t.equal((await get(`${admin.origin}${path}`, { authorization: `Bearer ${TOKEN}` })).status, 200, `${path} with the token`)
  }
})

t.test('the public port has no admin routes: /livez and /readyz go to legacy like any path', async (t) => {
  const proxy = await startProxy(t)
  for (const path of ['/livez', '/readyz']) {
    const answer = await proxy.send({ path, host: 'school-b.localhost' })
    t.equal(answer.header('x-served-by'), 'legacy', path)
    t.equal(answer.text, `legacy GET ${path}`)
  }
  t.same(proxy.legacy.requests.map((record) => record.target), ['/livez', '/readyz'])
})
