// Tenant resolution at the edge: which requests reach legacy (or the new handler) for which school,
// and which ficus answers itself without forwarding anything.
import t from 'tap'
import { RawConnection, rawRequest, startProxy } from '../helpers/proxy-kit.ts'

t.test('school-a.localhost:8080 is school-a, whatever the case, port or trailing dot', async (t) => {
  const proxy = await startProxy(t)
  for (const host of ['school-a.localhost:8080', 'SCHOOL-A.LOCALHOST', 'School-A.localhost.', 'school-a.localhost.:8080']) {
    const answer = await proxy.send({ path: '/attendance', host })
    t.equal(answer.statusCode, 200, host)
    t.equal(JSON.parse(answer.text).tenant, 'school-a', host)
    t.equal(answer.header('x-served-by'), 'new', host)
  }
  t.equal(proxy.legacy.requests.length, 0)
})

t.test('an unknown school gets a 404 from ficus and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t)
  for (const host of ['school-z.localhost', 'school-z.localhost:8080', 'elsewhere.example.org', 'a.school-a.localhost']) {
    const answer = await proxy.send({ path: '/reports', host })
    t.equal(answer.statusCode, 404, host)
    t.match(answer.text, /FICUS_ERR_TENANT_UNKNOWN/, host)
    t.equal(answer.header('x-served-by'), undefined, 'nobody served it')
  }
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('a request without a Host is a 400 and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t)
  const http11 = await rawRequest(t, proxy.port, 'GET /reports HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.equal(http11.statusCode, 400, 'HTTP/1.1 requires a Host')
  const http10 = await rawRequest(t, proxy.port, 'GET /reports HTTP/1.0\r\n\r\n')
  t.equal(http10.statusCode, 400, 'HTTP/1.0 without Host')
  t.match(http10.body.toString(), /FICUS_ERR_HOST_INVALID/)
  const empty = await rawRequest(t, proxy.port, 'GET /reports HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n')
  t.equal(empty.statusCode, 400, 'empty Host')
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('two Host lines are a 400 and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t)
  for (const [first, second] of [['school-a.localhost', 'school-b.localhost'], ['school-b.localhost', 'school-b.localhost'], ['school-a.localhost', 'evil.example.org']]) {
    const answer = await rawRequest(t, proxy.port, `GET /reports HTTP/1.1\r\nHost: ${first}\r\nHost: ${second}\r\nConnection: close\r\n\r\n`)
    t.equal(answer.statusCode, 400, `${first} + ${second}`)
  }
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('a malformed Host is a 400 and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t)
  for (const host of ['school_a.localhost', 'school-a.localhost:99999', 'school-a..localhost', 'user@school-a.localhost', '[::1]', 'school-a.localhost:8080:1']) {
    const answer = await rawRequest(t, proxy.port, `GET /reports HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    t.equal(answer.statusCode, 400, host)
  }
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('the bare base domain is a 404 by default', async (t) => {
  const proxy = await startProxy(t)
  for (const host of ['localhost', 'localhost:8080', 'LOCALHOST.']) {
    const answer = await proxy.send({ path: '/', host })
    t.equal(answer.statusCode, 404, host)
  }
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('the bare base domain is forwarded to legacy with BARE_DOMAIN=legacy', async (t) => {
  const proxy = await startProxy(t, { env: { BARE_DOMAIN: 'legacy' } })
  const answer = await proxy.send({ path: '/welcome?x=1', host: 'localhost:8080' })
  t.equal(answer.statusCode, 200)
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.sole().target, '/welcome?x=1')
  t.same(proxy.legacy.sole().values('host'), ['localhost:8080'])
})

t.test('a school in maintenance gets a 503 and a suspended one a 403, nothing forwarded', async (t) => {
  const proxy = await startProxy(t)
  const maintenance = await proxy.send({ path: '/reports', host: 'school-m.localhost' })
  t.equal(maintenance.statusCode, 503)
  t.match(maintenance.text, /FICUS_ERR_TENANT_MAINTENANCE/)
  const suspended = await proxy.send({ path: '/reports', host: 'school-s.localhost' })
  t.equal(suspended.statusCode, 403)
  t.match(suspended.text, /FICUS_ERR_TENANT_SUSPENDED/)
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
})

t.test('a keep-alive connection is resolved per request, not per connection', async (t) => {
  const proxy = await startProxy(t)
  const connection = await RawConnection.open(t, proxy.port)
  connection.write('GET /reports HTTP/1.1\r\nHost: school-b.localhost\r\n\r\n')
  t.equal((await connection.response()).statusCode, 200)
  connection.write('GET /reports HTTP/1.1\r\nHost: school-z.localhost\r\n\r\n')
  t.equal((await connection.response()).statusCode, 404)
  t.equal(proxy.legacy.requests.length, 1)
  t.same(proxy.legacy.sole().values('host'), ['school-b.localhost'])
})
