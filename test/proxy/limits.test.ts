// Safety limits: body and header sizes, and clients too slow to finish their request.
import t from 'tap'
import { RawConnection, rawRequest, startProxy } from '../helpers/proxy-kit.ts'

// Small limits so the tests are quick; the bound on "cut off" is generous for a loaded machine.
const HEADERS_TIMEOUT_MS = 300
const REQUEST_TIMEOUT_MS = 600
const CUT_OFF_BOUND_MS = 5_000

t.test('a Content-Length over LEGACY_BODY_LIMIT_BYTES is a 413 and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t, { env: { LEGACY_BODY_LIMIT_BYTES: '1000' } })
  const answer = await rawRequest(t, proxy.port, 'POST /upload HTTP/1.1\r\nHost: school-b.localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 1001\r\nAccept: application/json\r\n\r\n')
  t.equal(answer.statusCode, 413)
  t.equal(JSON.parse(answer.body.toString()).error.code, 'FICUS_ERR_BODY_TOO_LARGE')
  t.equal(proxy.legacy.requests.length, 0, 'legacy saw nothing')
  const atLimit = await proxy.send({ method: 'POST', path: '/upload', host: 'school-b.localhost', body: Buffer.alloc(1000) })
  t.equal(atLimit.statusCode, 200, 'a body at the limit goes through')
})

t.test('a chunked body that grows over LEGACY_BODY_LIMIT_BYTES is a 413 and legacy never gets it whole', async (t) => {
  const proxy = await startProxy(t, { env: { LEGACY_BODY_LIMIT_BYTES: '1000' } })
  const connection = await RawConnection.open(t, proxy.port)
  connection.write('POST /upload HTTP/1.1\r\nHost: school-b.localhost\r\nTransfer-Encoding: chunked\r\n\r\n')
  connection.write(`3e8\r\n${'a'.repeat(1000)}\r\n`)
  connection.write(`3e8\r\n${'b'.repeat(1000)}\r\n0\r\n\r\n`)
  const answer = await connection.response()
  t.equal(answer.statusCode, 413)
  t.notOk(proxy.legacy.requests.some((record) => record.complete && record.bodyLength > 1000), 'legacy never received an over-limit body whole')
})

t.test('headers larger than MAX_HEADER_BYTES are a 431 and nothing is forwarded', async (t) => {
  const proxy = await startProxy(t, { env: { MAX_HEADER_BYTES: '2048' } })
  const answer = await rawRequest(t, proxy.port, `GET /reports HTTP/1.1\r\nHost: school-b.localhost\r\nX-Big: ${'a'.repeat(4096)}\r\nConnection: close\r\n\r\n`)
  t.equal(answer.statusCode, 431)
  t.equal(proxy.legacy.requests.length, 0)
  const small = await proxy.send({ path: '/reports', host: 'school-b.localhost', headers: { 'x-small': 'a'.repeat(512) } })
  t.equal(small.statusCode, 200, 'headers under the limit go through')
})

t.test('a client that never finishes its headers is cut off after HEADERS_TIMEOUT_MS', async (t) => {
  const proxy = await startProxy(t, { env: { HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) } })
  const connection = await RawConnection.open(t, proxy.port)
  const startedAt = performance.now()
  connection.write('GET /reports HTTP/1.1\r\nHost: school-b.localhost\r\nX-Slow: ')
  await connection.waitClosed(CUT_OFF_BOUND_MS)
  t.comment(`cut off after ${Math.round(performance.now() - startedAt)} ms`)
  t.match(connection.receivedText, /^(HTTP\/1\.1 408|$)/, 'answered 408 or simply closed')
  t.equal(proxy.legacy.requests.length, 0, 'nothing forwarded')
})

t.test('a client that never finishes its body is cut off after REQUEST_TIMEOUT_MS', async (t) => {
  const proxy = await startProxy(t, { env: { HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) } })
  const connection = await RawConnection.open(t, proxy.port)
  connection.write('POST /upload HTTP/1.1\r\nHost: school-b.localhost\r\nContent-Length: 100\r\n\r\n0123456789')
  await connection.waitClosed(CUT_OFF_BOUND_MS)
  t.notOk(proxy.legacy.requests.some((record) => record.complete), 'legacy never got a complete body')
})
