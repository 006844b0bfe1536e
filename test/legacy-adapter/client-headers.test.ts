// Headers that speak for someone (legacy-adapter/headers.ts): the forwarding headers legacy gets
// are ficus's own unless the peer is a trusted proxy; names a WSGI or CGI gateway would fold into
// another header's, and URL and method overrides, never reach legacy unless allowed; and legacy's
// session cookie comes back host-only. Names, casings and values are generated and sent on raw
// sockets; the recording legacy shows what arrived.
import t from 'tap'
import fc from 'fast-check'
import { setForwardingHeaders } from '../../legacy-adapter/headers.ts'
import { ConfigError, parseConfig } from '../../proxy/config.ts'
import { rawRequest, startProxy, type ProxyKit } from '../helpers/proxy-kit.ts'

type Tap = { teardown (fn: () => unknown): void }

/** `text` with each letter's case chosen at random. */
function anyCase (text: string): fc.Arbitrary<string> {
  return fc.array(fc.boolean(), { minLength: text.length, maxLength: text.length })
    .map((uppers) => [...text].map((char, i) => uppers[i] === true ? char.toUpperCase() : char.toLowerCase()).join(''))
}

const HEADER_VALUE = fc.string({ unit: fc.constantFrom('1', '6', '.', ':', 'a', 'f', ' ', ',', ';', '=', 'x'), minLength: 1, maxLength: 20 }).map((value) => value.trim() === '' ? '6.6.6.6' : value.trim())

async function sendHeaders (t: Tap, proxy: ProxyKit, lines: ReadonlyArray<readonly [string, string]>): Promise<void> {
  const head = ['GET /reports HTTP/1.1', 'Host: school-b.localhost', ...lines.map(([name, value]) => `${name}: ${value}`), 'Connection: close']
  const answer = await rawRequest(t, proxy.port, head.join('\r\n') + '\r\n\r\n')
  if (answer.statusCode !== 200) throw new Error(`${answer.statusCode}: ${answer.body.toString()}`)
}

const SPEAKING_FOR_CLIENT = ['Forwarded', 'X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host', 'X-Forwarded-Port', 'X-Real-IP',
  'X-Forwarded-Prefix', 'X-Forwarded-Server', 'X-Forwarded-Ssl', 'True-Client-IP', 'X-Client-IP', 'X-Cluster-Client-IP']
const SPOOFED_LINES = fc.array(fc.tuple(fc.constantFrom(...SPEAKING_FOR_CLIENT).chain(anyCase), HEADER_VALUE), { minLength: 1, maxLength: 8 })

t.test('from an untrusted peer, legacy gets only ficus\'s own forwarding headers, whatever the client sent', async (t) => {
  const proxy = await startProxy(t)
  const expected = {
    forwarded: ['for=127.0.0.1;host=school-b.localhost;proto=http'],
    'x-forwarded-for': ['127.0.0.1'],
    'x-forwarded-proto': ['http'],
    'x-forwarded-host': ['school-b.localhost'],
    'x-forwarded-port': [String(proxy.port)],
    'x-real-ip': ['127.0.0.1']
  }
  await fc.assert(fc.asyncProperty(SPOOFED_LINES, async (lines) => {
    const before = proxy.legacy.requests.length
    await sendHeaders(t, proxy, lines)
    const record = proxy.legacy.requests[before]
    for (const [name, values] of Object.entries(expected)) {
      if (JSON.stringify(record?.values(name)) !== JSON.stringify(values)) throw new Error(`${name}: ${JSON.stringify(record?.values(name))} after ${JSON.stringify(lines)}`)
    }
    for (const name of ['x-forwarded-prefix', 'x-forwarded-server', 'x-forwarded-ssl', 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip']) {
      if (record?.values(name).length !== 0) throw new Error(`${name} reached legacy after ${JSON.stringify(lines)}`)
    }
  }), { numRuns: 80 })
  t.pass('never believed')
})

t.test('from a peer in TRUSTED_PROXIES, the chains are extended and the rest believed', async (t) => {
  const proxy = await startProxy(t, { env: { TRUSTED_PROXIES: '127.0.0.1' } })
  await sendHeaders(t, proxy, [
    ['X-Forwarded-For', '203.0.113.7'], ['Forwarded', 'for=203.0.113.7;proto=https;host=school-b.example.org'],
    ['X-Real-IP', '203.0.113.7'], ['X-Forwarded-Port', '443'], ['X-Forwarded-Proto', 'https'], ['X-Forwarded-Prefix', '/app']
  ])
  const record = proxy.legacy.sole()
  t.same(record.values('x-forwarded-for'), ['203.0.113.7, 127.0.0.1'])
  t.same(record.values('forwarded'), ['for=203.0.113.7;proto=https;host=school-b.example.org, for=127.0.0.1;host=school-b.localhost;proto=http'])
  t.same(record.values('x-real-ip'), ['203.0.113.7'])
  t.same(record.values('x-forwarded-port'), ['443'])
  t.same(record.values('x-forwarded-proto'), ['https'])
  t.same(record.values('x-forwarded-prefix'), ['/app'])
})

t.test('a Host with a port, and an IPv6 client, are quoted in Forwarded', async (t) => {
  const proxy = await startProxy(t)
  await rawRequest(t, proxy.port, 'GET /reports HTTP/1.1\r\nHost: school-b.localhost:8080\r\nConnection: close\r\n\r\n')
  t.same(proxy.legacy.sole().values('forwarded'), ['for=127.0.0.1;host="school-b.localhost:8080";proto=http'])
  const headers: Record<string, string> = {}
  setForwardingHeaders(headers, { clientAddress: '2001:db8::7', protocol: 'https', host: 'school-b.example.org', port: 443, requestId: 'r1', trusted: false }, 'x-request-id')
  t.same(headers.forwarded, 'for="[2001:db8::7]";host=school-b.example.org;proto=https')
  t.same(headers['x-real-ip'], '2001:db8::7')
})

// Header names as a gateway would not read them: with `_` (WSGI: X_Forwarded_For is
// X-Forwarded-For) or another character but letters, digits and `-` (CGI maps them all to `_`).
const NAME_PART = fc.string({ unit: fc.constantFrom('X', 'x', 'F', 'o', 'r', 'w', 'a', 'd', '1', '-'), minLength: 1, maxLength: 6 })
const FOLDING_NAME = fc.oneof(
  fc.constantFrom('X_Forwarded_For', 'x_real_ip', 'X-Forwarded_Host', 'Forwarded_', 'X_Request_Id', 'Content_Length', 'X_HTTP_Method_Override').chain(anyCase),
  fc.tuple(NAME_PART, fc.constantFrom('_', '.', '~', '!', '*', '\'', '+', '^', '`', '|', '#', '$', '%', '&'), NAME_PART).map(([a, odd, b]) => a + odd + b)
)
const PLAIN_NAME = fc.tuple(fc.constantFrom('X-', 'Z-'), fc.string({ unit: fc.constantFrom('a', 'B', '7', '-'), minLength: 1, maxLength: 8 })).map(([a, b]) => `${a}Plain-${b}`)

t.test('header names with `_` or any other character a gateway folds never reach legacy; plain ones do', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(fc.array(FOLDING_NAME, { minLength: 1, maxLength: 5 }), PLAIN_NAME, async (folding, plain) => {
    const before = proxy.legacy.requests.length
    await sendHeaders(t, proxy, [...folding.map((name) => [name, '6.6.6.6'] as const), [plain, 'kept']])
    const record = proxy.legacy.requests[before]
    const names = (record?.rawHeaders ?? []).filter((_, i) => i % 2 === 0)
    const leaked = names.filter((name) => !/^[A-Za-z0-9-]+$/.test(name))
    if (leaked.length > 0) throw new Error(`${leaked.join(', ')} reached legacy`)
    if (JSON.stringify(record?.values(plain)) !== '["kept"]') throw new Error(`${plain} did not reach legacy`)
    if (record?.values('x-forwarded-for').join() !== '127.0.0.1') throw new Error(`X-Forwarded-For: ${record?.values('x-forwarded-for').join()}`)
  }), { numRuns: 100 })
  t.pass('none leaked')
})

const OVERRIDES = ['X-Original-URL', 'X-Rewrite-URL', 'X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']

t.test('URL and method overrides never reach legacy, in any casing', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...OVERRIDES).chain(anyCase), fc.constantFrom('DELETE', '/admin', 'PUT')), { minLength: 1, maxLength: 5 }), async (lines) => {
    const before = proxy.legacy.requests.length
    await sendHeaders(t, proxy, lines)
    const record = proxy.legacy.requests[before]
    for (const name of OVERRIDES) if (record?.values(name).length !== 0) throw new Error(`${name} reached legacy after ${JSON.stringify(lines)}`)
  }), { numRuns: 60 })
  t.pass('none reached legacy')
})

t.test('LEGACY_ALLOW_HEADERS lets named ones through, and only those', async (t) => {
  const proxy = await startProxy(t, { env: { LEGACY_ALLOW_HEADERS: 'X-HTTP-Method-Override, X_Api_Key' } })
  await sendHeaders(t, proxy, [['x-http-method-override', 'PATCH'], ['X-Method-Override', 'DELETE'], ['X_API_KEY', 'k1'], ['X_Other', 'o']])
  const record = proxy.legacy.sole()
  t.same(record.values('x-http-method-override'), ['PATCH'])
  t.same(record.values('x_api_key'), ['k1'])
  t.same(record.values('x-method-override'), [])
  t.same(record.values('x_other'), [])
})

t.test('LEGACY_ALLOW_HEADERS refuses names that would speak for ficus, and names never dropped', async (t) => {
  for (const [value, pattern] of [
    ['X_Forwarded_For', /X-Forwarded-For|x-forwarded-for/],
    ['x_real_ip', /x-real-ip/],
    ['X_Request_Id', /x-request-id/],
    ['Content_Length', /content-length/],
    ['X-Custom', /never dropped/],
    ['bad name', /not a header name/]
  ] as const) {
    let problems: readonly string[] = []
    try { parseConfig({ LEGACY_ALLOW_HEADERS: value }) } catch (error) { if (error instanceof ConfigError) problems = error.problems }
    t.equal(problems.length, 1, value)
    t.match(problems[0], /^LEGACY_ALLOW_HEADERS /, value)
    t.match(problems[0], pattern, value)
  }
  t.same(parseConfig({ LEGACY_ALLOW_HEADERS: 'X-HTTP-Method-Override,X-Rewrite-URL' }).legacyAllowHeaders, ['x-http-method-override', 'x-rewrite-url'])
})

// Set-Cookie lines for the session cookie with Domain attributes in any casing, spacing and place.
const ATTRIBUTE = fc.constantFrom('Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax', 'Max-Age=3600', 'Expires=Wed, 21 Oct 2026 07:28:00 GMT')
const DOMAIN = fc.tuple(anyCase('domain'), fc.constantFrom('', ' '), fc.constantFrom('.localhost', 'localhost', '.school-b.localhost', ''))
  .map(([name, space, value]) => `${name}${space}=${space}${value}`)
const SESSION_SET_COOKIE = fc.tuple(fc.array(fc.oneof(ATTRIBUTE, DOMAIN), { minLength: 1, maxLength: 6 }), fc.constantFrom('; ', ';'))
  .map(([attributes, separator]) => ({ line: ['session=abc.def', ...attributes].join(separator), attributes, separator }))

t.test('legacy\'s session cookie comes back without its Domain attributes, other cookies untouched', async (t) => {
  const proxy = await startProxy(t)
  await fc.assert(fc.asyncProperty(SESSION_SET_COOKIE, async ({ line, attributes, separator }) => {
    const other = 'prefs=1; Domain=.localhost; Path=/'
    proxy.legacy.handle(({ res }) => { res.setHeader('set-cookie', [line, other]); res.end('ok') })
    const answer = await rawRequest(t, proxy.port, 'GET /sign-in HTTP/1.1\r\nHost: school-b.localhost\r\nConnection: close\r\n\r\n')
    const expected = ['session=abc.def', ...attributes.filter((attribute) => !/^domain\s*=/i.test(attribute))].join(separator)
    const received = answer.values('set-cookie')
    if (received[0] !== expected || received[1] !== other) throw new Error(`${line} came back as ${JSON.stringify(received)}`)
  }), { numRuns: 60 })
  t.pass('host-only')
})

t.test('with SESSION_COOKIE_HOST_ONLY=false, and for another SESSION_COOKIE, Set-Cookie is untouched', async (t) => {
  const line = 'session=abc; Domain=.localhost; Path=/'
  const kept = await startProxy(t, { env: { SESSION_COOKIE_HOST_ONLY: 'false' } })
  kept.legacy.handle(({ res }) => { res.setHeader('set-cookie', line); res.end('ok') })
  t.same((await rawRequest(t, kept.port, 'GET / HTTP/1.1\r\nHost: school-b.localhost\r\n\r\n')).values('set-cookie'), [line])
  const named = await startProxy(t, { env: { SESSION_COOKIE: 'sid' } })
  named.legacy.handle(({ res }) => { res.setHeader('set-cookie', [line, 'sid=x; Domain=.localhost']); res.end('ok') })
  t.same((await rawRequest(t, named.port, 'GET / HTTP/1.1\r\nHost: school-b.localhost\r\n\r\n')).values('set-cookie'), [line, 'sid=x'])
})
