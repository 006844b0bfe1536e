// When legacy fails: a short error from ficus (HTML, or JSON for API clients) that gives nothing
// away, and a request that is never sent twice.
import t, { type Test } from 'tap'
import { closedPort, startProxy } from '../helpers/proxy-kit.ts'

// Generous: the error must come from the timeout, not from the test's own client timing out.
const LEGACY_TIMEOUT_MS = 300

function assertNoInternals (t: Test, text: string, port: number): void {
  t.notMatch(text, /127\.0\.0\.1|localhost:\d|ECONNREFUSED|ECONNRESET|UND_ERR|undici|reply-from/i, 'no address or transport detail')
  t.notMatch(text, new RegExp(`\\b${port}\\b`), 'no port')
  t.notMatch(text, /\bat .+\(.*:\d+:\d+\)|node:internal|\.ts:\d+/, 'no stack')
  t.ok(text.length < 1_000, `short (${text.length} bytes)`)
}

t.test('legacy down: 502 with a short page and no internals', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { env: { LEGACY_URL: `http://127.0.0.1:${port}` } })
  const answer = await proxy.send({ path: '/reports', host: 'school-b.localhost' })
  t.equal(answer.statusCode, 502)
  t.match(answer.header('content-type'), /text\/html/)
  t.match(answer.text, /FICUS_ERR_LEGACY_UNAVAILABLE/)
  assertNoInternals(t, answer.text, port)
})

t.test('legacy down, API client: 502 as JSON with the code and request id', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { env: { LEGACY_URL: `http://127.0.0.1:${port}` } })
  const answer = await proxy.send({ path: '/api/marks', host: 'school-b.localhost', headers: { accept: 'application/json' } })
  t.equal(answer.statusCode, 502)
  t.match(answer.header('content-type'), /application\/json/)
  const body = JSON.parse(answer.text)
  t.equal(body.error.code, 'FICUS_ERR_LEGACY_UNAVAILABLE')
  t.type(body.error.message, 'string')
  t.type(body.error.requestId, 'string')
  assertNoInternals(t, answer.text, port)
})

t.test('legacy slower than LEGACY_TIMEOUT_MS: 504', async (t) => {
  const proxy = await startProxy(t, { env: { LEGACY_TIMEOUT_MS: String(LEGACY_TIMEOUT_MS) } })
  proxy.legacy.handle(() => { /* never answers; the recorder closes its connections at teardown */ })
  const answer = await proxy.send({ path: '/reports/slow', host: 'school-b.localhost', headers: { accept: 'application/json' } })
  t.equal(answer.statusCode, 504)
  t.equal(JSON.parse(answer.text).error.code, 'FICUS_ERR_LEGACY_TIMEOUT')
  assertNoInternals(t, answer.text, proxy.legacy.port)
  t.equal(proxy.legacy.requests.length, 1, 'asked once')
})

t.test('a POST that legacy drops is answered 502 and never sent again', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ req }) => { req.socket.destroy() })
  const answer = await proxy.send({ method: 'POST', path: '/marks', host: 'school-b.localhost', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'mark=A' })
  t.equal(answer.statusCode, 502)
  t.equal(proxy.legacy.requests.length, 1, 'legacy saw the POST exactly once')
})

t.test('a GET that legacy drops is answered 502 and not retried either', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ req }) => { req.socket.destroy() })
  const answer = await proxy.send({ path: '/reports', host: 'school-b.localhost' })
  t.equal(answer.statusCode, 502)
  t.equal(proxy.legacy.requests.length, 1)
})

t.test('a 503 from legacy is passed on as is, not retried', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ res }) => {
    res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' })
    res.end('legacy is busy')
  })
  const answer = await proxy.send({ path: '/reports', host: 'school-b.localhost' })
  t.equal(answer.statusCode, 503)
  t.equal(answer.text, 'legacy is busy')
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.requests.length, 1)
})

t.test('legacy\'s own error statuses and pages pass through untouched', async (t) => {
  const proxy = await startProxy(t)
  proxy.legacy.handle(({ res, record }) => {
    const status = Number(record.target.slice(1))
    res.writeHead(status, { 'content-type': 'text/html' })
    res.end(`<p>legacy ${status}</p>`)
  })
  for (const status of [400, 404, 500, 502]) {
    const answer = await proxy.send({ path: `/${status}`, host: 'school-b.localhost' })
    t.equal(answer.statusCode, status)
    t.equal(answer.text, `<p>legacy ${status}</p>`)
  }
})
