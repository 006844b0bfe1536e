// The session cookie in a Cookie header: read only in its one plain spelling, removed in every
// spelling any parser may take for it, the rest of the header kept byte for byte. Generated header
// shapes are checked against werkzeug's own parser (what Flask reads), run in Debian's python.
import { execFile } from 'node:child_process'
import fc from 'fast-check'
import t from 'tap'
import { MALFORMED_SESSION_COOKIE, SEVERAL_SESSION_COOKIES, SessionCookie } from '../../sessions/cookies.ts'
import { FLASK_FIXTURE_DIR, SYSTEM_PYTHON } from '../helpers/flask-app.ts'

const cookie = new SessionCookie('session')

/** What werkzeug's parse_cookie finds under `session` in each header, in one python run. */
async function werkzeugValues (headers: readonly string[]): Promise<string[][]> {
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(SYSTEM_PYTHON, [FLASK_FIXTURE_DIR + 'pickle_tool.py', 'cookies', 'session'],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => err === null ? resolve(stdout) : reject(err))
    child.stdin?.end(headers.map((h) => JSON.stringify(h)).join('\n') + '\n')
  })
  return out.trim().split('\n').map((line) => JSON.parse(line) as string[])
}

t.test('reads the one plain session cookie', async (t) => {
  t.equal(cookie.read('a=1; session=abc; b=2'), 'abc')
  t.equal(cookie.read('session=abc'), 'abc')
  t.equal(cookie.read('a=1;session=abc.def-_~'), 'abc.def-_~')
  t.equal(cookie.read(undefined), undefined)
  t.equal(cookie.read('xsession=1; session2=2; my_session=3; sessionid=4'), undefined)
  t.equal(cookie.read('a=session=1'), undefined, 'a value that looks like a pair is not one')
})

t.test('several values, in any spelling, are refused', async (t) => {
  for (const header of ['session=a; session=b', 'session=a; SESSION=b', 'session=a; session =b', 'x=1, session=b; session=a', 'session=a; sess%69on=b']) {
    t.equal(cookie.read(header), SEVERAL_SESSION_COOKIES, header)
  }
})

t.test('one value in a spelling other parsers read differently is malformed', async (t) => {
  const cases = [
    'session =abc', 'session= abc', 'session=abc ', '\tsession=abc', '\x01session=abc', 'SESSION=abc', 'Session=abc',
    'sess%69on=abc', 'session="abc"', 'session=ab%2Ecd', 'session=ab\\cd', 'session=', 'session', 'x=1,session=abc',
    'x="1"session=abc', 'a="; session=abc; b="', 'session=ab\u00e9'
  ]
  for (const header of cases) t.equal(cookie.read(header), MALFORMED_SESSION_COOKIE, JSON.stringify(header))
})

t.test('removes every spelling and keeps every other byte', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['session=x', undefined],
    ['session=x; b=2', 'b=2'],
    ['a=1; session=x', 'a=1'],
    ['a=1; session=x; b=2', 'a=1; b=2'],
    ['a=1;session=x;b=2', 'a=1;b=2'],
    ['a="q; r"; session=x;  b=2 ; sessionid=keep', 'a="q; r";  b=2 ; sessionid=keep'],
    ['session=x; a=1; SESSION=y', 'a=1'],
    ['a=1; b=2', 'a=1; b=2'],
    ['a=1; session=x; ', 'a=1; '],
    ['a=1, session=x; b=2', 'b=2']
  ]
  for (const [header, expected] of cases) t.equal(cookie.remove(header), expected, header)
  const unchanged = 'a=1; b=2'
  t.equal(cookie.remove(unchanged), unchanged, 'no session cookie: the same string back')
})

// Pieces a Cookie header is made of: other cookies (some quoted, some holding `;` or `,` inside
// quotes) and the session cookie in the spellings browsers, attackers and other parsers produce.
const id = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/)
const otherCookie = fc.oneof(
  fc.tuple(fc.constantFrom('theme', 'lang', '_ga', 'sessionid', 'xsession', 'session2', 'a'), fc.stringMatching(/^[A-Za-z0-9._=-]{0,8}$/)).map(([n, v]) => `${n}=${v}`),
  fc.tuple(fc.constantFrom('q', 'prefs'), fc.stringMatching(/^[A-Za-z0-9 ;,=\\"]{0,10}$/)).map(([n, v]) => `${n}="${v}"`),
  fc.constantFrom('flag', '=x', '', ' ')
)
const plainSession = id.map((v) => `session=${v}`)
const oddSession = fc.tuple(fc.constantFrom(
  (v: string) => `session =${v}`,
  (v: string) => `session= ${v}`,
  (v: string) => `session=${v} `,
  (v: string) => `SESSION=${v}`,
  (v: string) => `Session=${v}`,
  (v: string) => `sess%69on=${v}`,
  (v: string) => `\tsession=${v}`,
  (v: string) => `\x0bsession=${v}`,
  (v: string) => `session="${v}"`,
  (v: string) => `session="${v}\\"`,
  (v: string) => `session=${v}%2E`,
  (v: string) => `session=${v}\\`,
  () => 'session=',
  () => 'session'
), id).map(([spell, v]) => spell(v))
const separator = fc.oneof({ weight: 4, arbitrary: fc.constant('; ') }, { weight: 3, arbitrary: fc.constantFrom(';', ', ', ';  ', ' ; ', '"', '";') })
const piece = fc.oneof({ weight: 4, arbitrary: otherCookie }, { weight: 2, arbitrary: plainSession }, { weight: 1, arbitrary: oddSession })
const header = fc.array(fc.tuple(piece, separator), { minLength: 1, maxLength: 6 })
  .map((parts) => parts.map(([piece, sep], i) => i === parts.length - 1 ? piece : piece + sep).join(''))

t.test('after removal no spelling of the session cookie is left, and nothing else is lost', async (t) => {
  fc.assert(fc.property(header, (h) => {
    const removed = cookie.remove(h)
    if (removed !== undefined && cookie.read(removed) !== undefined) return false
    if (cookie.read(h) === undefined) return removed === h
    // Every `;`-pair that holds no spelling of the session cookie is still there, in order.
    const kept = h.split(';').filter((pair) => cookie.read(pair) === undefined).join(';').replace(/^[ \t]+/, '')
    return (removed ?? '') === kept
  }), { numRuns: 5000 })
  t.pass('5000 generated headers')
})

t.test('werkzeug (Flask) agrees: the value ficus reads is the one it reads, and after removal it finds none', async (t) => {
  const headers = fc.sample(header, { numRuns: 3000, seed: 1009 })
  const removed = headers.map((h) => cookie.remove(h) ?? '')
  const [onHeaders, onRemoved] = [await werkzeugValues(headers), await werkzeugValues(removed)]
  const disagreements: string[] = []
  let read = 0
  headers.forEach((h, i) => {
    const value = cookie.read(h)
    const theirs = onHeaders[i] ?? []
    if (typeof value === 'string') {
      read++
      if (theirs.length !== 1 || theirs[0] !== value) disagreements.push(`${JSON.stringify(h)}: ficus ${value}, werkzeug ${JSON.stringify(theirs)}`)
    } else if (value === undefined && theirs.length !== 0) {
      disagreements.push(`${JSON.stringify(h)}: ficus sees no session cookie, werkzeug ${JSON.stringify(theirs)}`)
    }
    if ((onRemoved[i] ?? []).length !== 0) disagreements.push(`${JSON.stringify(removed[i])}: werkzeug still finds ${JSON.stringify(onRemoved[i])}`)
  })
  t.same(disagreements.slice(0, 10), [], 'no header where werkzeug reads the session cookie differently')
  t.ok(read > 100, `${read} of ${headers.length} headers carry a plain session cookie`)
})
