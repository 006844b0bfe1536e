// Route matching (README "Route matching", header of request-path/canonical-path.ts): every spelling of
// a migrated route that legacy could read as the same route is either decided on its canonical
// form (and that form is what legacy gets) or rejected with 400. It never reaches legacy for a
// school where the route is migrated.
import t from 'tap'
import { rawRequest, startProxy, type ProxyKit } from '../helpers/proxy-kit.ts'

// target -> the canonical URL the decision is taken on, or 400.
const VARIANTS: ReadonlyArray<readonly [string, string | 400]> = [
  ['/attendance', '/attendance'],
  ['/ATTENDANCE', '/ATTENDANCE'],
  ['/Attendance', '/Attendance'],
  ['/attendance/', '/attendance/'],
  ['/ATTENDANCE/', '/ATTENDANCE/'],
  ['//attendance', '/attendance'],
  ['///attendance//', '/attendance/'],
  ['/%61ttendance', '/attendance'],
  ['/%41TTENDANCE', '/ATTENDANCE'],
  ['/attendanc%65', '/attendance'],
  ['/%61%74%74%65%6e%64%61%6e%63%65', '/attendance'],
  ['/attendance?class=3B', '/attendance?class=3B'],
  ['//attendance?next=//x/../y', '/attendance?next=//x/../y'],
  ['/attendance;x', 400],
  ['/attendance;', 400],
  ['/attendance;jsessionid=abc', 400],
  ['/attendance%3Bx', 400],
  ['/attendance%3bjsessionid=abc', 400],
  ['/attendance%20', 400],
  ['/attendance%23top', 400],
  ['/attendance%3F', 400],
  ['/%2561ttendance', 400],
  ['/%25%36%31ttendance', 400],
  ['/attendance%253B', 400],
  ['/x/../attendance', 400],
  ['/./attendance', 400],
  ['/attendance/.', 400],
  ['/attendance/..', 400],
  ['/%2e%2e/attendance', 400],
  ['/%2E/attendance', 400],
  ['/.%2e/attendance', 400],
  ['/x/%2e%2e/attendance', 400],
  // No dot-segments, but downstream traversal checks read them as one.
  ['/..attendance', 400],
  ['/attendance../x', 400],
  ['/%2e%2eattendance', 400],
  ['/attendance%2F', 400],
  ['/attendance%2f', 400],
  ['/a%2Fb', 400],
  ['/x%2F..%2Fattendance', 400],
  ['/attendance%5C', 400],
  ['/attendance\\', 400],
  ['/\\attendance', 400],
  ['/x\\..\\attendance', 400],
  ['/attendance%00', 400],
  ['/attendance%0a', 400],
  ['/attendance%', 400],
  ['/attendance%zz', 400],
  ['/attendance%6', 400],
  ['/attendance#top', 400],
  ['http://school-a.localhost/attendance', 400],
  ['attendance', 400],
  ['*', 400]
]

async function sendRaw (t: Tap, proxy: ProxyKit, target: string, host: string) {
  return rawRequest(t, proxy.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
}
type Tap = { teardown (fn: () => unknown): void }

t.test('each spelling of a migrated route is served by new on its canonical form, or rejected', async (t) => {
  const proxy = await startProxy(t)
  for (const [target, expected] of VARIANTS) {
    const answer = await sendRaw(t, proxy, target, 'school-a.localhost')
    if (expected === 400) {
      t.equal(answer.statusCode, 400, `${target} rejected`)
      t.equal(answer.values('x-served-by').length, 0, `${target}: nobody served it`)
    } else {
      t.equal(answer.statusCode, 200, `${target} served`)
      t.same(answer.values('x-served-by'), ['new'], `${target} served by new`)
      t.equal(JSON.parse(answer.body.toString()).url, expected, `${target} decided on ${expected}`)
    }
  }
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'no spelling reached legacy for school-a')
})

t.test('where the route is not migrated, legacy receives the canonical bytes the decision was taken on', async (t) => {
  const proxy = await startProxy(t)
  for (const [target, expected] of VARIANTS) {
    const before = proxy.legacy.requests.length
    const answer = await sendRaw(t, proxy, target, 'school-b.localhost')
    if (expected === 400) {
      t.equal(answer.statusCode, 400, `${target} rejected`)
      t.equal(proxy.legacy.requests.length, before, `${target} not forwarded`)
    } else {
      t.equal(answer.statusCode, 200, `${target} forwarded`)
      t.same(answer.values('x-served-by'), ['legacy'], `${target} served by legacy`)
      t.equal(proxy.legacy.requests.length, before + 1, `${target} forwarded once`)
      t.equal(proxy.legacy.requests[before]?.target, expected, `${target} reached legacy as ${expected}`)
    }
  }
})

t.test('a HEAD of a migrated route is decided like its GET', async (t) => {
  const proxy = await startProxy(t)
  const a = await rawRequest(t, proxy.port, 'HEAD /Attendance/ HTTP/1.1\r\nHost: school-a.localhost\r\nConnection: close\r\n\r\n', { head: true })
  t.same(a.values('x-served-by'), ['new'])
  t.equal(proxy.legacy.requests.length, 0)
  const b = await rawRequest(t, proxy.port, 'HEAD /Attendance/ HTTP/1.1\r\nHost: school-b.localhost\r\nConnection: close\r\n\r\n', { head: true })
  t.same(b.values('x-served-by'), ['legacy'])
  t.equal(proxy.legacy.sole().requestLine, 'HEAD /Attendance/ HTTP/1.1')
})

t.test('plain paths and query strings reach legacy byte for byte', async (t) => {
  const proxy = await startProxy(t)
  const targets = [
    '/',
    '/reports',
    '/reports/2024/term-1.pdf',
    '/Reports/Term-1/',
    '/a-b_c~d.e/f..g/h.i.j',
    "/sub-delims/!$&'()*+,=:@",
    '/caf%C3%A9/100%25',
    '/100%25-off/%25zz',
    '/attendance-report',
    '/attendance.csv',
    '/?',
    '/search?q=a+b&q=c%20d&empty=&flag',
    '/search?a=1&a=2&a[]=3&a%5B%5D=4',
    "/search?q='quoted'&s=!$()*,;:@/?",
    '/search??double?question',
    '/search?next=/x/../y&path=../../etc&dot=./a',
    '/search?enc=%2F%2e%2e%5C%00%0D%0A',
    '/search?lower=%c3%a9&upper=%C3%A9',
    '/search?pipe=a|b&caret=^&tick=`&braces={}',
    '/search?malformed=%zz&half=%4&percent=%'
  ]
  for (const target of targets) {
    const before = proxy.legacy.requests.length
    const answer = await sendRaw(t, proxy, target, 'school-b.localhost')
    t.equal(answer.statusCode, 200, `${target} forwarded (${answer.body.toString().slice(0, 80)})`)
    t.equal(proxy.legacy.requests[before]?.target, target, `${target} byte for byte`)
  }
})

t.test('a path escape that is not UTF-8 is rejected for every school alike', async (t) => {
  const proxy = await startProxy(t)
  for (const target of ['/caf%E9', '/files/%FF%FE', '/attendance%FF']) {
    for (const host of ['school-a.localhost', 'school-b.localhost']) {
      const answer = await sendRaw(t, proxy, target, host)
      t.equal(answer.statusCode, 400, `${target} at ${host}`)
    }
  }
  t.equal(proxy.legacy.requests.length, 0, 'nothing forwarded')
})

t.test('path segments that merely contain dots are forwarded as sent or rejected, never rewritten', async (t) => {
  const proxy = await startProxy(t)
  for (const target of ['/...', '/..hidden', '/trailing..', '/a/.../b', '/.well-known/x', '/.env']) {
    const before = proxy.legacy.requests.length
    const answer = await sendRaw(t, proxy, target, 'school-b.localhost')
    if (answer.statusCode === 400) {
      t.equal(proxy.legacy.requests.length, before, `${target} rejected, not forwarded`)
    } else {
      t.equal(answer.statusCode, 200, `${target} forwarded`)
      t.equal(proxy.legacy.requests[before]?.target, target, `${target} byte for byte`)
    }
  }
})

t.test('lower-case escapes are forwarded upper-case, as decided', async (t) => {
  const proxy = await startProxy(t)
  const answer = await sendRaw(t, proxy, '/caf%c3%a9?x=%c3%a9', 'school-b.localhost')
  t.equal(answer.statusCode, 200)
  t.equal(proxy.legacy.sole().target, '/caf%C3%A9?x=%c3%a9', 'the path is canonical, the query untouched')
})
