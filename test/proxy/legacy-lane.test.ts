// The legacy lane (request-path/legacy-lane.ts) is a shortcut, not a second set of rules: over
// generated requests (spellings of a migrated path, schools, methods, headers, bodies) a ficus
// with the lane answers exactly as a ficus without it, legacy receives the same bytes from both,
// and both write the same access-log line. And the lane does take the plain legacy-bound GET
// (fastify's own hooks never see it), while everything else still goes through fastify.
import { createRequire } from 'node:module'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { rawRequest, startProxy, waitFor, DEFAULT_WAIT_MS, type LogLine, type ProxyKit, type RawResponse } from '../helpers/proxy-kit.ts'
import type { RecordedRequest } from '../helpers/recording-legacy.ts'

const requestLines = (proxy: ProxyKit): LogLine[] => proxy.logs.filter((line) => line.msg === 'request')

// Every spelling fastify's router and the canonical path treat alike or refuse: letter case,
// escapes (either case of hex), repeated and trailing slashes, a query, a dot segment.
const letter = (char: string) => fc.constantFrom(char, char.toUpperCase(), `%${char.charCodeAt(0).toString(16)}`, `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
const attendance = fc.tuple(...[...'attendance'].map(letter)).map((chars) => chars.join(''))
const target = fc.tuple(
  fc.constantFrom('/', '//', '///'),
  fc.oneof(attendance, fc.constantFrom('register/7B', 'x', '', 'attendance.php', '.', '..', 'a%2Fb')),
  fc.constantFrom('', '/', '//', '/7B', '/.', '?class=7B', '/?x=..%2F', ';x=1')
).map(([slashes, path, tail]) => `${slashes}${path}${tail}`)
const host = fc.constantFrom('school-a.localhost', 'SCHOOL-A.localhost', 'school-b.localhost', 'school-b.localhost:80', 'school-m.localhost', 'school-s.localhost', 'unknown.localhost', 'localhost', 'school-a.localhost, school-b.localhost', 'bad_host')
const extraHeaders = fc.subarray([
  'X-Forwarded-For: 203.0.113.9',
  'Connection: keep-alive, x-hop',
  'X-Hop: dropped',
  'X_Forwarded_For: 203.0.113.9',
  'Cookie: theme=dark',
  'Accept: application/json',
  'Upgrade: h2c',
  'Expect: 100-continue'
])
const request = fc.record({
  method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'),
  target,
  host,
  headers: extraHeaders,
  body: fc.constantFrom('', '', 'a=1')
})
type Generated = typeof request extends fc.Arbitrary<infer T> ? T : never

function bytesOf (generated: Generated): string {
  const lines = [`${generated.method} ${generated.target} HTTP/1.1`, `Host: ${generated.host}`, 'Connection: close', ...generated.headers]
  if (generated.body !== '') lines.push(`Content-Length: ${generated.body.length}`)
  return `${lines.join('\r\n')}\r\n\r\n${generated.body}`
}

// What the client sees, less what differs between any two processes (request id, dates).
function seen (answer: RawResponse): unknown {
  const headers = answer.headerLines.filter(([name]) => !['date', 'x-request-id'].includes(name.toLowerCase())).map(([name, value]) => `${name.toLowerCase()}: ${value}`)
  const body = answer.body.toString('latin1').replace(/[0-9a-f]{12}-[0-9a-z]+/g, '<id>')
  return { status: answer.statusCode, headers, body }
}

// What legacy received, less the request id and the ports of each proxy and each legacy.
function received (record: RecordedRequest | undefined, legacyHost: string): unknown {
  if (record === undefined) return undefined
  const headers: string[] = []
  for (let i = 0; i < record.rawHeaders.length; i += 2) {
    const name = (record.rawHeaders[i] as string).toLowerCase()
    const value = record.rawHeaders[i + 1] as string
    if (name === 'x-request-id' || name === 'x-forwarded-port') continue
    headers.push(`${name}: ${name === 'host' && value === legacyHost ? '<legacy>' : value}`)
  }
  return { requestLine: record.requestLine, headers, body: record.body?.toString('latin1') }
}

// The access-log line, less the request id, the timing and the process.
function logged (line: LogLine | undefined): unknown {
  if (line === undefined) return undefined
  const { reqId: _reqId, durationMs: _durationMs, time: _time, pid: _pid, hostname: _hostname, ...rest } = line
  return rest
}

t.test('the lane\'s router is fastify\'s own router library, the very copy fastify loads', async (t) => {
  const ours = createRequire(import.meta.url).resolve('find-my-way')
  const fastifys = createRequire(createRequire(import.meta.url).resolve('fastify')).resolve('find-my-way')
  t.equal(ours, fastifys, 'one find-my-way: a path matches alike in both routers')
})

t.test('over generated requests, ficus with the lane answers, forwards and logs exactly as ficus without it', async (t) => {
  const withLane = await startProxy(t)
  const withoutLane = await startProxy(t, { legacyLane: false })
  const legacyHost = (proxy: ProxyKit) => new URL(proxy.legacy.url).host

  let compared = 0
  let forwarded = 0
  await fc.assert(fc.asyncProperty(request, async (generated) => {
    const outcomes = []
    for (const proxy of [withLane, withoutLane]) {
      const before = proxy.legacy.requests.length
      const linesBefore = requestLines(proxy).length
      const answer = await rawRequest(t, proxy.port, bytesOf(generated), { head: generated.method === 'HEAD' })
      await waitFor(() => requestLines(proxy).length > linesBefore, DEFAULT_WAIT_MS, 'the access-log line')
      const record = proxy.legacy.requests.length > before ? proxy.legacy.requests.at(-1) : undefined
      if (record !== undefined) await record.ended.catch(() => undefined)
      outcomes.push({ answer: seen(answer), legacy: received(record, legacyHost(proxy)), log: logged(requestLines(proxy).at(-1)), lines: requestLines(proxy).length - linesBefore })
    }
    compared++
    if (outcomes[0]?.legacy !== undefined) forwarded++
    t.same(outcomes[0], outcomes[1], bytesOf(generated).split('\r\n')[0])
    return true
  }), { numRuns: 250 })
  // About one in six generated requests reaches legacy (37-46 of 250 in eight runs): both kinds are always well represented.
  t.ok(forwarded >= 10 && forwarded < compared, `${forwarded} of ${compared} generated requests reached legacy, the others were refused or served new`)
})

t.test('the lane takes the plain legacy-bound GET and HEAD before fastify builds a request; the rest goes through fastify', async (t) => {
  let seenByFastify = 0
  const proxy = await startProxy(t, { beforeListen: (app) => app.addHook('onResponse', (_request, _reply, done) => { seenByFastify++; done() }) })

  const legacyBound = await proxy.send({ host: 'school-b.localhost', path: '/attendance' })
  t.equal(legacyBound.header('x-served-by'), 'legacy')
  const head = await proxy.send({ method: 'HEAD', host: 'school-b.localhost', path: '/register/7B' })
  t.equal(head.header('x-served-by'), 'legacy')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(seenByFastify, 0, 'no fastify request was built for the legacy-bound GET and HEAD')

  const newBound = await proxy.send({ host: 'school-a.localhost', path: '/attendance' })
  t.equal(newBound.header('x-served-by'), 'new')
  const post = await proxy.send({ method: 'POST', host: 'school-b.localhost', path: '/register/7B', body: 'x=1' })
  t.equal(post.header('x-served-by'), 'legacy')
  const refused = await proxy.send({ host: 'unknown.localhost', path: '/attendance' })
  t.equal(refused.statusCode, 404)
  await waitFor(() => seenByFastify === 3, DEFAULT_WAIT_MS, 'fastify to see three requests')
  t.equal(seenByFastify, 3, 'the new-bound GET, the POST and the refusal went through fastify')

  const line = requestLines(proxy).find((entry) => entry.tenant === 'school-b' && entry.method === 'GET')
  t.match(line, { route: 'attendance.page', backend: 'legacy', upstream: 'legacy', status: 200, path: '/attendance' }, 'the lane writes the access-log line')
  const sent = proxy.legacy.requests[0]
  t.equal(sent?.headers['x-request-id'], line?.reqId, 'legacy got the request id of the log line')
})

t.test('legacy unreachable on the lane: one attempt, then ficus\'s error page with the same request id, logged once', async (t) => {
  let connections = 0
  const resetting = createServer((socket: Socket) => { connections++; socket.destroy() })
  resetting.listen(0, '127.0.0.1')
  await new Promise((resolve) => resetting.once('listening', resolve))
  t.teardown(() => { resetting.close() })
  const port = (resetting.address() as AddressInfo).port
  const proxy = await startProxy(t, { env: { LEGACY_URL: `http://127.0.0.1:${port}` } })

  const answer = await proxy.send({ host: 'school-b.localhost', path: '/register/7B', headers: { accept: 'application/json' } })
  t.equal(answer.statusCode, 502)
  t.match(JSON.parse(answer.text), { error: { code: 'FICUS_ERR_LEGACY_UNAVAILABLE' } })
  t.equal(connections, 1, 'legacy was tried once, never again')
  await waitFor(() => requestLines(proxy).length > 0, DEFAULT_WAIT_MS, 'the access-log line')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const lines = requestLines(proxy)
  t.equal(lines.length, 1, 'one access-log line')
  t.match(lines[0], { tenant: 'school-b', backend: 'legacy', upstream: 'legacy', status: 502 })
})
