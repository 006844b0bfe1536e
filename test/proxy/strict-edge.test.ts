// A strict HTTP edge (request-path/strict-edge.ts): only HTTP/1.0 and 1.1 request lines, no TRACE or
// CONNECT, no protocol upgrade turned into a plain request, no GET or HEAD body, and a 413 that
// closes the connection instead of reading the rest. Request lines, methods, framings and
// header values are generated, sent on raw sockets (most of them no HTTP client would send), and
// the recording legacy shows that nothing refused reached it.
import t from 'tap'
import fc from 'fast-check'
import { METHODS } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { migratedRoute } from '../../core/route.ts'
import { ATTENDANCE_FLAG, ATTENDANCE_ROUTE, RawConnection, flagsOnFor, rawRequest, startProxy, type ProxyKit, type RawResponse } from '../helpers/proxy-kit.ts'

type Tap = { teardown (fn: () => unknown): void }

const FORWARDED_METHODS = METHODS.filter((method) => method !== 'CONNECT' && method !== 'TRACE')

function codeOf (answer: RawResponse): string | undefined {
  try {
    return (JSON.parse(answer.body.toString()) as { error?: { code?: string } }).error?.code
  } catch {
    return undefined
  }
}

async function exchange (t: Tap, proxy: ProxyKit, lines: readonly string[], body: string | Buffer = '', head = false): Promise<RawResponse> {
  const request = Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.from(body)])
  return rawRequest(t, proxy.port, request, { head })
}

const METHOD = fc.oneof(
  { arbitrary: fc.constantFrom(...METHODS), weight: 6 },
  { arbitrary: fc.constantFrom(...METHODS).map((method) => method.toLowerCase()), weight: 1 },
  { arbitrary: fc.string({ unit: fc.constantFrom('A', 'B', 'X', 'Z', '-', '_'), minLength: 1, maxLength: 8 }), weight: 1 }
)
const VERSION = fc.oneof(
  { arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/1.1'), weight: 4 },
  { arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/0.9', ''), weight: 2 },
  { arbitrary: fc.tuple(fc.nat(9), fc.nat(9)).map(([major, minor]) => `HTTP/${major}.${minor}`), weight: 2 },
  { arbitrary: fc.constantFrom('HTTP/2', 'HTTP/1.10', 'HTTP/01.1', 'http/1.1', 'HTTP/1.1 ', 'HTTPS/1.1', 'HTTP/1,1', 'HTTP/1.1\t'), weight: 1 }
)

t.test('only HTTP/1.0 and 1.1 request lines of a known method other than TRACE and CONNECT are forwarded', async (t) => {
  const proxy = await startProxy(t)
  const seen = new Map<string, number>()
  await fc.assert(fc.asyncProperty(METHOD, VERSION, async (method, version) => {
    const before = proxy.legacy.requests.length
    const requestLine = version === '' ? `${method} /reports` : `${method} /reports ${version}`
    const answer = await exchange(t, proxy, [requestLine, 'Host: school-b.localhost', 'Accept: application/json', 'Connection: close'], '', method === 'HEAD')
    const forwarded = proxy.legacy.requests.slice(before)
    const outcome = `${answer.statusCode} ${codeOf(answer) ?? ''}`.trim()
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1)
    if ((version === 'HTTP/1.0' || version === 'HTTP/1.1') && FORWARDED_METHODS.includes(method)) {
      if (answer.statusCode !== 200 || forwarded.length !== 1 || forwarded[0]?.method !== method) {
        throw new Error(`${requestLine}: ${outcome}, forwarded ${forwarded.length}`)
      }
      return
    }
    if (forwarded.length !== 0) throw new Error(`${requestLine} was forwarded as ${forwarded[0]?.requestLine}`)
    const wellFormed = version === 'HTTP/1.0' || version === 'HTTP/1.1'
    const expected = method === 'TRACE' && wellFormed ? [501] : method === 'CONNECT' ? [400, 501, 505] : [400, 505]
    if (!expected.includes(answer.statusCode)) throw new Error(`${requestLine}: ${outcome}, expected ${expected.join(' or ')}`)
  }), { numRuns: 250 })
  t.comment(JSON.stringify([...seen.entries()]))
  t.ok(seen.get('505 FICUS_ERR_HTTP_VERSION_UNSUPPORTED') !== undefined && seen.get('200') !== undefined, 'both forwarded and refused request lines were generated')
})

t.test('HTTP/2.0, HTTP/0.9 and a version-less request line are a 505 that closes the connection', async (t) => {
  const proxy = await startProxy(t)
  for (const requestLine of ['GET /reports HTTP/2.0', 'GET /reports HTTP/0.9', 'GET /reports']) {
    const connection = await RawConnection.open(t, proxy.port)
    connection.write(`${requestLine}\r\nHost: school-b.localhost\r\nAccept: application/json\r\n\r\n`)
    const answer = await connection.response()
    t.equal(answer.statusCode, 505, requestLine)
    t.equal(codeOf(answer), 'FICUS_ERR_HTTP_VERSION_UNSUPPORTED', requestLine)
    t.same(answer.values('connection'), ['close'], requestLine)
    await connection.waitClosed()
  }
  t.equal(proxy.legacy.requests.length, 0, 'nothing forwarded')
})

t.test('TRACE and CONNECT are a 501 and never forwarded, on every school and target', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('TRACE', 'CONNECT'),
    fc.constantFrom('/', '/attendance', '/reports?x=1', 'school-b.localhost:443', '*'),
    fc.constantFrom('school-a.localhost', 'school-b.localhost', 'localhost', 'unknown.localhost'),
    async (method, target, host) => {
      const answer = await exchange(t, proxy, [`${method} ${target} HTTP/1.1`, `Host: ${host}`, 'Max-Forwards: 0'])
      if (answer.statusCode === 501) return
      // Node refuses a TRACE whose target is not a path before ficus sees it.
      if (method === 'TRACE' && !target.startsWith('/') && answer.statusCode === 400) return
      throw new Error(`${method} ${target} at ${host}: ${answer.statusCode}`)
    }), { numRuns: 60 })
  const trace = await exchange(t, proxy, ['TRACE /reports HTTP/1.1', 'Host: school-b.localhost', 'Accept: application/json'])
  t.equal(codeOf(trace), 'FICUS_ERR_METHOD_UNSUPPORTED')
  const connect = await exchange(t, proxy, ['CONNECT legacy.internal:8080 HTTP/1.1', 'Host: legacy.internal:8080'])
  t.equal(connect.statusCode, 501)
  t.match(connect.body.toString(), /FICUS_ERR_METHOD_UNSUPPORTED/)
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received nothing')
  t.same(proxy.logs.filter((line) => line.level >= 50).map((line) => line.msg), [], 'a refused method is no error of ficus\'s')
})

t.test('a GET or HEAD with a body is a 400 that closes the connection, never a 500, and is not forwarded', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('GET', 'HEAD'),
    fc.constantFrom('/attendance', '/reports'),
    fc.constantFrom('school-a.localhost', 'school-b.localhost'),
    fc.uint8Array({ minLength: 1, maxLength: 3000 }),
    fc.constantFrom('length', 'chunked'),
    async (method, path, host, bytes, framing) => {
      const body = Buffer.from(bytes)
      const framed = framing === 'length' ? body : Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')])
      const connection = await RawConnection.open(t, proxy.port)
      connection.write(Buffer.concat([Buffer.from([
        `${method} ${path} HTTP/1.1`, `Host: ${host}`, 'Accept: application/json',
        framing === 'length' ? `Content-Length: ${body.length}` : 'Transfer-Encoding: chunked', '', ''
      ].join('\r\n')), framed]))
      const answer = await connection.response({ head: method === 'HEAD' })
      if (answer.statusCode !== 400 || answer.values('connection')[0] !== 'close') throw new Error(`${method} ${path} with a ${framing} body: ${answer.statusCode}`)
      if (method === 'GET' && codeOf(answer) !== 'FICUS_ERR_BODY_NOT_ALLOWED') throw new Error(`${method}: ${answer.body.toString()}`)
      await connection.waitClosed()
    }), { numRuns: 80 })
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received none')
  const empty = await exchange(t, proxy, ['GET /reports HTTP/1.1', 'Host: school-b.localhost', 'Content-Length: 0', 'Connection: close'])
  t.equal(empty.statusCode, 200, 'a GET with Content-Length: 0 carries no body and is forwarded')
})

t.test('a 413 says Connection: close and ficus stops reading the body', async (t) => {
  const proxy = await startProxy(t, { env: { LEGACY_BODY_LIMIT_BYTES: '1000' } })
  const declared = await RawConnection.open(t, proxy.port)
  declared.write('POST /upload HTTP/1.1\r\nHost: school-b.localhost\r\nAccept: application/json\r\nContent-Length: 50000000\r\n\r\n' + 'x'.repeat(500))
  const answer = await declared.response()
  t.equal(answer.statusCode, 413)
  t.equal(codeOf(answer), 'FICUS_ERR_BODY_TOO_LARGE')
  t.same(answer.values('connection'), ['close'])
  await declared.waitClosed()
  t.pass('closed with 49.9 MB of the declared body never sent')

  const chunked = await RawConnection.open(t, proxy.port)
  chunked.write('POST /upload HTTP/1.1\r\nHost: school-b.localhost\r\nTransfer-Encoding: chunked\r\n\r\n')
  chunked.write(`7d0\r\n${'a'.repeat(2000)}\r\n`)
  const grown = await chunked.response()
  t.equal(grown.statusCode, 413)
  t.same(grown.values('connection'), ['close'])
  await chunked.waitClosed()
  t.notOk(proxy.legacy.requests.some((record) => record.complete), 'legacy never received a whole over-limit body')
})

t.test('a migrated route\'s 413 closes the connection too', async (t) => {
  const upload = migratedRoute({
    name: 'upload.new',
    method: 'POST',
    url: '/new-upload',
    flag: ATTENDANCE_FLAG,
    handler: async (_request: FastifyRequest, reply: FastifyReply) => reply.send({ ok: true })
  })
  const proxy = await startProxy(t, { env: { BODY_LIMIT_BYTES: '1000' }, routes: [ATTENDANCE_ROUTE, upload], flags: flagsOnFor(['school-a']) })
  const connection = await RawConnection.open(t, proxy.port)
  connection.write('POST /new-upload HTTP/1.1\r\nHost: school-a.localhost\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"a":')
  const answer = await connection.response()
  t.equal(answer.statusCode, 413)
  t.same(answer.values('x-served-by'), ['new'])
  t.same(answer.values('connection'), ['close'])
  await connection.waitClosed()
  t.equal(proxy.legacy.requests.length, 0)
})

const UPGRADE_TOKEN = fc.oneof(
  fc.constantFrom('websocket', 'WebSocket', 'WEBSOCKET', 'websocket/13', 'h2', 'HTTP/2.0', 'TLS/1.2', 'IRC/6.9'),
  fc.string({ unit: fc.constantFrom('a', 'b', 'W', 's', '/', '1', '.'), minLength: 1, maxLength: 10 }).filter((token) => token.trim().toLowerCase() !== 'h2c')
)

t.test('an upgrade request is a 501, never a plain request to legacy', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(
    fc.array(UPGRADE_TOKEN, { minLength: 1, maxLength: 3 }), fc.boolean(), fc.boolean(),
    fc.constantFrom('GET', 'POST', 'OPTIONS'),
    fc.constantFrom('school-a.localhost', 'school-b.localhost'),
    async (tokens, withH2c, withConnection, method, host) => {
      const offers = withH2c ? ['h2c', ...tokens] : tokens
      const lines = [`${method} /attendance HTTP/1.1`, `Host: ${host}`, 'Accept: application/json', `Upgrade: ${offers.join(', ')}`]
      if (withConnection) lines.push('Connection: Upgrade')
      if (offers.some((offer) => offer.toLowerCase() === 'websocket')) lines.push('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13')
      const answer = await exchange(t, proxy, lines)
      if (answer.statusCode !== 501 || codeOf(answer) !== 'FICUS_ERR_UPGRADE_UNSUPPORTED') throw new Error(`Upgrade: ${offers.join(', ')}: ${answer.statusCode}`)
    }), { numRuns: 100 })
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received none')
})

t.test('an offer of cleartext HTTP/2 alone is ignored: the request is served over HTTP/1.1', async (t) => {
  const proxy = await startProxy(t)
  const answer = await exchange(t, proxy, ['GET /reports HTTP/1.1', 'Host: school-b.localhost', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: H2C', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA'])
  t.equal(answer.statusCode, 200)
  const record = proxy.legacy.sole()
  t.same(record.values('upgrade'), [], 'the offer goes no further')
  t.same(record.values('http2-settings'), [], 'nor does its Connection-listed header')
})

t.test('framings a server could read two ways are refused before ficus sees them, nothing forwarded', async (t) => {
  const proxy = await startProxy(t)
  const AMBIGUOUS = fc.constantFrom(
    ['Content-Length: 3', 'Transfer-Encoding: chunked'],
    ['Content-Length: 3', 'Content-Length: 4'],
    ['Content-Length: 3', 'Content-Length: 3'],
    ['Content-Length: +3'],
    ['Transfer-Encoding: chunked, identity'],
    ['Transfer-Encoding: identity'],
    ['Transfer-Encoding: xchunked'],
    ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
    ['Content-Length : 3'],
    ['X-A: 1', '  Transfer-Encoding: chunked']
  )
  await fc.assert(fc.asyncProperty(AMBIGUOUS, fc.constantFrom('POST', 'PUT', 'DELETE'), fc.boolean(), async (framing, method, shuffled) => {
    const lines = shuffled ? [...framing].reverse() : framing
    const answer = await exchange(t, proxy, [`${method} /upload HTTP/1.1`, 'Host: school-b.localhost', ...lines], '3\r\nabc\r\n0\r\n\r\n')
    if (answer.statusCode !== 400) throw new Error(`${lines.join(' | ')}: ${answer.statusCode}`)
  }), { numRuns: 40 })
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received none')
})
