// The decision for a declared route: its flag, evaluated for the school, picks the new handler or
// legacy, and a response header says which one served.
import t from 'tap'
import { Unleash } from 'unleash-client'
import { Flags } from '../../flags/flags.ts'
import { ATTENDANCE_FLAG, flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'

t.test('flag on for the school: the new handler serves, with X-Served-By: new', async (t) => {
  const proxy = await startProxy(t)
  const answer = await proxy.send({ path: '/attendance', host: 'school-a.localhost' })
  t.equal(answer.statusCode, 200)
  t.equal(answer.header('x-served-by'), 'new')
  t.same(JSON.parse(answer.text), { servedBy: 'new', tenant: 'school-a', url: '/attendance' })
  t.equal(proxy.legacy.requests.length, 0)
})

t.test('flag off for the school: legacy serves, with X-Served-By: legacy', async (t) => {
  const proxy = await startProxy(t)
  const answer = await proxy.send({ path: '/attendance', host: 'school-b.localhost' })
  t.equal(answer.statusCode, 200)
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(answer.text, 'legacy GET /attendance')
  t.equal(proxy.legacy.sole().target, '/attendance')
})

t.test('a path no migrated route declares goes to legacy, even for a migrated school', async (t) => {
  const proxy = await startProxy(t)
  const answer = await proxy.send({ path: '/reports', host: 'school-a.localhost' })
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.sole().target, '/reports')
})

t.test('a method the migrated route does not declare goes to legacy', async (t) => {
  const proxy = await startProxy(t)
  const answer = await proxy.send({ method: 'POST', path: '/attendance', host: 'school-a.localhost', body: 'present=3B' })
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.sole().requestLine, 'POST /attendance HTTP/1.1')
})

t.test('SERVED_BY_HEADER renames the header on both sides', async (t) => {
  const proxy = await startProxy(t, { env: { SERVED_BY_HEADER: 'X-Backend' } })
  const fresh = await proxy.send({ path: '/attendance', host: 'school-a.localhost' })
  t.equal(fresh.header('x-backend'), 'new')
  t.equal(fresh.header('x-served-by'), undefined)
  const old = await proxy.send({ path: '/attendance', host: 'school-b.localhost' })
  t.equal(old.header('x-backend'), 'legacy')
  t.equal(old.header('x-served-by'), undefined)
})

t.test('an empty SERVED_BY_HEADER leaves the header out', async (t) => {
  const proxy = await startProxy(t, { env: { SERVED_BY_HEADER: '' } })
  const fresh = await proxy.send({ path: '/attendance', host: 'school-a.localhost' })
  const old = await proxy.send({ path: '/attendance', host: 'school-b.localhost' })
  t.equal(fresh.statusCode, 200)
  t.equal(old.statusCode, 200)
  t.equal(fresh.header('x-served-by'), undefined)
  t.equal(old.header('x-served-by'), undefined)
  t.same(JSON.parse(fresh.text).servedBy, 'new', 'still decided')
  t.equal(proxy.legacy.requests.length, 1)
})

t.test('legacy cannot claim to be new: its own X-Served-By is replaced', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ res }) => {
    res.writeHead(200, { 'x-served-by': 'new', 'content-length': '2' })
    res.end('ok')
  })
  const answer = await proxy.send({ path: '/attendance', host: 'school-b.localhost' })
  t.same(answer.headers['x-served-by'], 'legacy')
})

t.test('the flag sees the school, the route and the client address', async (t) => {
  const flags = {
    version: 2,
    features: [{
      name: ATTENDANCE_FLAG,
      enabled: true,
      strategies: [{
        name: 'default',
        parameters: {},
        constraints: [
          { contextName: 'tenantId', operator: 'IN', values: ['school-b'] },
          { contextName: 'route', operator: 'IN', values: ['attendance.page'] },
          { contextName: 'remoteAddress', operator: 'IN', values: ['127.0.0.1'] }
        ]
      }]
    }]
  }
  const proxy = await startProxy(t, { flags })
  t.equal((await proxy.send({ path: '/attendance', host: 'school-b.localhost' })).header('x-served-by'), 'new')
  t.equal((await proxy.send({ path: '/attendance', host: 'school-a.localhost' })).header('x-served-by'), 'legacy')
})

t.test('a flag rolled out to a share of schools sticks to the school, whatever else varies', async (t) => {
  const flags = {
    version: 2,
    features: [{
      name: ATTENDANCE_FLAG,
      enabled: true,
      strategies: [{ name: 'flexibleRollout', parameters: { rollout: '50', stickiness: 'tenantId', groupId: ATTENDANCE_FLAG }, constraints: [] }]
    }]
  }
  const tenants = { tenants: Array.from({ length: 12 }, (_, i) => ({ id: `school-${i}`, name: `School ${i}` })) }
  const proxy = await startProxy(t, { flags, tenants })
  const sides = new Map<string, Set<string>>()
  for (let round = 0; round < 4; round++) {
    for (const { id } of tenants.tenants) {
      const answer = await proxy.send({ path: '/attendance', host: `${id}.localhost`, headers: { cookie: `session=${round}`, 'x-request-id': `r${round}` } })
      const side = answer.header('x-served-by') ?? 'none'
      sides.set(id, (sides.get(id) ?? new Set()).add(side))
    }
  }
  for (const [id, seen] of sides) t.equal(seen.size, 1, `${id} always served by the same side`)
  const served = [...sides.values()].map((seen) => [...seen][0])
  t.ok(served.includes('new') && served.includes('legacy'), '50% moves some schools and not others')
})

t.test('flags not loaded yet: a migrated route answers 503 rather than guessing, the rest still flows', async (t) => {
  const unleash = new Unleash({ appName: 'ficus-test', url: 'http://flags.invalid/', disableMetrics: true, disableAutoStart: true, skipInstanceCountWarning: true })
  t.teardown(() => unleash.destroy())
  const notReady = new Flags(unleash, 'never started', { info () {}, warn () {}, error () {} })
  t.equal(notReady.isReady(), false)
  const proxy = await startProxy(t, { flagReader: notReady, flags: flagsOnFor(['school-a']) })
  const migrated = await proxy.send({ path: '/attendance', host: 'school-a.localhost', headers: { accept: 'application/json' } })
  t.equal(migrated.statusCode, 503)
  t.equal(JSON.parse(migrated.text).error.code, 'FICUS_ERR_FLAGS_NOT_READY')
  const other = await proxy.send({ path: '/reports', host: 'school-a.localhost' })
  t.equal(other.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.sole().target, '/reports')
})
