// Headers on the hop to legacy and back: end-to-end headers untouched (repeated ones and every
// Set-Cookie included), hop-by-hop ones dropped both ways, and the forwarding headers ficus's own.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { RawConnection, rawRequest, startProxy, waitFor } from '../helpers/proxy-kit.ts'

// An id ficus made up itself (proxy/request-id.ts): the process's random prefix, then a counter.
const GENERATED_ID = /^[0-9a-f]{12}-[0-9a-z]+$/

t.test('repeated request headers reach legacy with every value, in order', async (t) => {
  const proxy = await startProxy(t)
  await rawRequest(t, proxy.port, [
    'GET /reports HTTP/1.1', 'Host: school-b.localhost',
    'X-Multi: one', 'Accept: text/html', 'X-Multi: two, three', 'Accept: application/xhtml+xml', 'Cookie: a=1', 'Cookie: b=2',
    'Connection: close', '', ''
  ].join('\r\n'))
  const record = proxy.legacy.sole()
  t.equal(record.values('x-multi').join(', '), 'one, two, three')
  t.equal(record.values('accept').join(', '), 'text/html, application/xhtml+xml')
  t.equal(record.values('cookie').join('; '), 'a=1; b=2')
})

t.test('several Set-Cookie headers come back as separate headers, untouched', async (t) => {
  const proxy = await startProxy(t)
  const cookies = [
    'session=abc123; Path=/; HttpOnly; SameSite=Lax',
    'prefs=a%2Cb; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/',
    'tracking=; Max-Age=0; Path=/; Secure'
  ]
  proxy.legacy.handle(({ res }) => {
    res.setHeader('set-cookie', cookies)
    res.setHeader('link', ['</a.css>; rel=preload', '</b.js>; rel=preload'])
    res.end('ok')
  })
  const answer = await rawRequest(t, proxy.port, 'GET /sign-in HTTP/1.1\r\nHost: school-b.localhost\r\nConnection: close\r\n\r\n')
  t.same(answer.values('set-cookie'), cookies)
  t.equal(answer.values('link').join(', '), '</a.css>; rel=preload, </b.js>; rel=preload')
  const viaClient = await proxy.send({ path: '/sign-in', host: 'school-b.localhost' })
  t.same(viaClient.headers['set-cookie'], cookies)
})

t.test('legacy receives the original Host', async (t) => {
  const proxy = await startProxy(t)
  await proxy.send({ path: '/reports', host: 'School-B.localhost:8080' })
  t.same(proxy.legacy.sole().values('host'), ['School-B.localhost:8080'])
})

t.test('with PRESERVE_HOST=false legacy receives its own Host, and the original in X-Forwarded-Host', async (t) => {
  const proxy = await startProxy(t, { env: { PRESERVE_HOST: 'false' } })
  await proxy.send({ path: '/reports', host: 'school-b.localhost:8080' })
  const record = proxy.legacy.sole()
  t.same(record.values('host'), [`127.0.0.1:${proxy.legacy.port}`])
  t.same(record.values('x-forwarded-host'), ['school-b.localhost:8080'])
})

t.test('X-Forwarded-For/-Proto/-Host and X-Request-Id are added', async (t) => {
  const proxy = await startProxy(t)
  await proxy.send({ path: '/reports', host: 'school-b.localhost' })
  const record = proxy.legacy.sole()
  t.same(record.values('x-forwarded-for'), ['127.0.0.1'])
  t.same(record.values('x-forwarded-proto'), ['http'])
  t.same(record.values('x-forwarded-host'), ['school-b.localhost'])
  t.equal(record.values('x-request-id').length, 1)
  t.match(record.values('x-request-id')[0], GENERATED_ID)
})

t.test('each request gets its own request id', async (t) => {
  const proxy = await startProxy(t)
  await proxy.send({ path: '/a', host: 'school-b.localhost' })
  await proxy.send({ path: '/b', host: 'school-b.localhost' })
  const [first, second] = proxy.legacy.requests.map((record) => record.values('x-request-id')[0])
  t.not(first, second)
})

const SPOOFED = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', 'x-request-id': 'client-chosen-id' }

t.test('client-supplied forwarding headers are ignored from an untrusted peer', async (t) => {
  const proxy = await startProxy(t)
  await proxy.send({ path: '/reports', host: 'school-b.localhost', headers: SPOOFED })
  const record = proxy.legacy.sole()
  t.same(record.values('x-forwarded-for'), ['127.0.0.1'])
  t.same(record.values('x-forwarded-proto'), ['http'])
  t.same(record.values('x-forwarded-host'), ['school-b.localhost'])
  t.match(record.values('x-request-id')[0], GENERATED_ID)
})

t.test('from a peer in TRUSTED_PROXIES, X-Forwarded-For is appended and the others are kept', async (t) => {
  const proxy = await startProxy(t, { env: { TRUSTED_PROXIES: '127.0.0.1' } })
  await proxy.send({ path: '/reports', host: 'school-b.localhost', headers: SPOOFED })
  const record = proxy.legacy.sole()
  t.same(record.values('x-forwarded-for'), ['6.6.6.6, 127.0.0.1'])
  t.same(record.values('x-forwarded-proto'), ['https'])
  t.same(record.values('x-forwarded-host'), ['evil.example'])
  t.same(record.values('x-request-id'), ['client-chosen-id'])
})

t.test('a trusted peer cannot smuggle a malformed request id', async (t) => {
  const proxy = await startProxy(t, { env: { TRUSTED_PROXIES: '127.0.0.0/8' } })
  await proxy.send({ path: '/reports', host: 'school-b.localhost', headers: { 'x-request-id': 'has spaces and ; semicolons' } })
  t.match(proxy.legacy.sole().values('x-request-id')[0], GENERATED_ID)
})

t.test('hop-by-hop request headers and those named in Connection are not forwarded', async (t) => {
  const proxy = await startProxy(t)
  const connection = await RawConnection.open(t, proxy.port)
  connection.write([
    'GET /reports HTTP/1.1', 'Host: school-b.localhost',
    'Connection: keep-alive, X-Drop-Me, x-also-dropped',
    'Keep-Alive: timeout=300', 'TE: trailers', 'Trailer: x-checksum', 'Upgrade: h2c',
    'Proxy-Connection: keep-alive', 'Proxy-Authorization: Basic Zm9vOmJhcg==',
    'X-Drop-Me: 1', 'X-Also-Dropped: 2', 'X-Keep-Me: 3', '', ''
  ].join('\r\n'))
  t.equal((await connection.response()).statusCode, 200)
  const record = proxy.legacy.sole()
  const names = new Set(record.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()))
  for (const name of ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authorization', 'x-drop-me', 'x-also-dropped']) {
    t.notOk(names.has(name), `${name} not forwarded`)
  }
  t.notMatch(record.values('connection').join(','), /drop/i, 'the client\'s Connection list is not forwarded')
  t.same(record.values('x-keep-me'), ['3'])
})

t.test('hop-by-hop response headers and those named in Connection do not reach the client', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ res }) => {
    res.writeHead(200, [
      ['Connection', 'keep-alive, X-Legacy-Hop'], ['X-Legacy-Hop', 'internal'], ['Keep-Alive', 'timeout=99, max=7'],
      ['Proxy-Connection', 'keep-alive'], ['Proxy-Authenticate', 'Basic realm="legacy"'], ['Upgrade', 'h2c'], ['Trailer', 'x-sum'],
      ['X-End-To-End', 'kept']
    ].flat())
    res.end('ok')
  })
  const answer = await rawRequest(t, proxy.port, 'GET /reports HTTP/1.1\r\nHost: school-b.localhost\r\n\r\n')
  t.equal(answer.statusCode, 200)
  for (const name of ['x-legacy-hop', 'proxy-connection', 'proxy-authenticate', 'upgrade', 'trailer']) {
    t.same(answer.values(name), [], `${name} not passed on`)
  }
  t.notMatch(answer.values('keep-alive').join(','), /99|max=7/, 'legacy\'s Keep-Alive is not passed on')
  t.notMatch(answer.values('connection').join(','), /legacy-hop/i, 'legacy\'s Connection list is not passed on')
  t.same(answer.values('x-end-to-end'), ['kept'])
  t.equal(answer.body.toString(), 'ok')
})

t.test('a client cannot strip the headers ficus adds by naming them in Connection', async (t) => {
  const proxy = await startProxy(t)
  await rawRequest(t, proxy.port, [
    'GET /reports HTTP/1.1', 'Host: school-b.localhost',
    'Connection: x-forwarded-for, x-forwarded-proto, X-Forwarded-Host, x-request-id, host', '', ''
  ].join('\r\n'))
  const record = proxy.legacy.sole()
  t.same(record.values('x-forwarded-for'), ['127.0.0.1'])
  t.same(record.values('x-forwarded-proto'), ['http'])
  t.same(record.values('x-forwarded-host'), ['school-b.localhost'])
  t.match(record.values('x-request-id')[0], GENERATED_ID)
  t.same(record.values('host'), ['school-b.localhost'])
})

t.test('an upload with Expect: 100-continue gets its 100 and reaches legacy whole', async (t) => {
  const proxy = await startProxy(t)
  const body = randomBytes(200_000)
  const connection = await RawConnection.open(t, proxy.port)
  connection.write([
    'PUT /files/report.pdf HTTP/1.1', 'Host: school-b.localhost', 'Content-Type: application/pdf',
    `Content-Length: ${body.length}`, 'Expect: 100-continue', '', ''
  ].join('\r\n'))
  const interim = await connection.response()
  t.equal(interim.statusCode, 100, 'the client is told to go on before it sends the body')
  t.equal(proxy.legacy.requests.length === 0 || proxy.legacy.requests[0]?.bodyLength === 0, true, 'no body has moved yet')
  connection.write(body)
  const final = await connection.response()
  t.equal(final.statusCode, 200)
  await waitFor(() => proxy.legacy.requests[0]?.complete === true, 5_000, 'legacy to have the whole body')
  const record = proxy.legacy.sole()
  t.equal(record.bodySha256, createHash('sha256').update(body).digest('hex'))
  t.same(record.values('expect'), [], 'legacy is not asked for a second 100-continue')
})
