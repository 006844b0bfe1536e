// ficus's CSRF tokens are Flask-WTF's, checked against itsdangerous itself (Debian's, under
// /usr/bin/python3): tokens Python signs verify here, tokens signed here load in Python, and
// age, signature, payload and session value are each checked.
import { execFileSync } from 'node:child_process'
import fc from 'fast-check'
import t from 'tap'
import { CsrfTokens } from '../../access/csrf.ts'
import { sameSiteProblem } from '../../access/stage.ts'
import { SYSTEM_PYTHON } from '../helpers/flask-app.ts'

const SECRET = 'csrf-test-secret'

/** Runs itsdangerous' URLSafeTimedSerializer(SECRET, salt='wtf-csrf-token') on each input line. */
function python (script: string, lines: readonly string[]): string[] {
  const program = `import sys, json\nfrom itsdangerous import URLSafeTimedSerializer, SignatureExpired, BadData\ns = URLSafeTimedSerializer(${JSON.stringify(SECRET)}, salt='wtf-csrf-token')\n${script}`
  return execFileSync(SYSTEM_PYTHON, ['-c', program], { input: lines.join('\n') + '\n', encoding: 'utf8' }).trim().split('\n')
}

t.test('tokens signed by itsdangerous verify, against their own session value only', async (t) => {
  const values = [CsrfTokens.sessionValue(), CsrfTokens.sessionValue(), 'short', 'é-ünïcode']
  const tokens = python('for line in sys.stdin.read().splitlines(): print(s.dumps(line))', values)
  const csrf = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 })
  values.forEach((value, i) => {
    t.equal(csrf.verify(tokens[i], value), 'ok', `token of ${value}`)
    t.equal(csrf.verify(tokens[i], values[(i + 1) % values.length]), 'mismatch', 'not against another session\'s value')
  })
  t.equal(new CsrfTokens({ secret: 'another', timeLimitSeconds: 3600 }).verify(tokens[0], values[0]), 'invalid', 'another secret')
  t.equal(csrf.verify(undefined, values[0]), 'missing')
  t.equal(csrf.verify(tokens[0], undefined), 'no-session-token')
})

t.test('tokens signed here load in itsdangerous, within its max_age', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const csrf = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 })
  const values = [CsrfTokens.sessionValue(), 'x', 'a'.repeat(200)]
  const fresh = values.map((value) => csrf.sign(value))
  const old = values.map((value) => csrf.sign(value, now - 7200))
  const loaded = python(`for line in sys.stdin.read().splitlines():
    try: print(json.dumps(s.loads(line, max_age=3600)))
    except SignatureExpired: print('"expired"')
    except BadData: print('"bad"')`, [...fresh, ...old])
  t.same(loaded.map((line) => JSON.parse(line)), [...values, 'expired', 'expired', 'expired'])
})

t.test('the time limit, and a clock gone backwards', async (t) => {
  let now = 1_800_000_000
  const csrf = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 60, now: () => now })
  const token = csrf.sign('v')
  now += 60
  t.equal(csrf.verify(token, 'v'), 'ok', 'at the limit')
  now += 1
  t.equal(csrf.verify(token, 'v'), 'expired', 'past it')
  t.equal(csrf.verify(csrf.sign('v', now + 10), 'v'), 'expired', 'issued in the future')
  t.equal(new CsrfTokens({ secret: SECRET, timeLimitSeconds: 0, now: () => now + 1e6 }).verify(token, 'v'), 'ok', 'no limit with 0')
})

t.test('any change to a good token makes it invalid', async (t) => {
  const csrf = new CsrfTokens({ secret: SECRET, timeLimitSeconds: 3600 })
  const value = CsrfTokens.sessionValue()
  const token = csrf.sign(value)
  fc.assert(fc.property(fc.nat(token.length - 1), fc.constantFrom(...'ABCxyz019-_.='.split('')), (at, char) => {
    const changed = token.slice(0, at) + char + token.slice(at + 1)
    if (changed === token) return true
    return csrf.verify(changed, value) !== 'ok'
  }), { numRuns: 300 })
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (junk) => csrf.verify(junk, value) !== 'ok'))
  t.pass('no changed token and no junk string verified')
})

t.test('Origin and Referer: only the school\'s own host passes, whatever the spelling', async (t) => {
  const host = 'school-a.example.org'
  t.equal(sameSiteProblem(host, `https://${host}`, undefined), undefined)
  t.equal(sameSiteProblem(host, 'https://SCHOOL-A.Example.org', undefined), undefined, 'host names are case-insensitive')
  t.equal(sameSiteProblem(host, undefined, `https://${host}/register/7B?x=1`), undefined, 'Referer when Origin is absent')
  t.match(sameSiteProblem(host, 'null', `https://${host}/`), /Origin/, 'an opaque Origin is refused, the Referer does not rescue it')
  t.match(sameSiteProblem(host, undefined, undefined), /neither/)
  t.match(sameSiteProblem(undefined, `https://${host}`, undefined), /Host/)
  const lookalikes = fc.oneof(
    fc.constantFrom(`https://${host}.evil.net`, `https://evil.net/${host}`, `https://${host}@evil.net`, `https://evil-${host}`, `https://${host}.`,
      `https://${host}:8443`, `https://school-b.example.org`, `https://example.org`, `ftp://${host}`, `javascript://${host}`, `https://xn--school-a-.example.org`),
    fc.tuple(fc.webUrl(), fc.constant(host)).map(([url]) => url)
  )
  fc.assert(fc.property(lookalikes, (origin) => {
    const problem = sameSiteProblem(host, origin, undefined)
    let same = false
    try { const url = new URL(origin); same = (url.protocol === 'https:' || url.protocol === 'http:') && url.host === host } catch {}
    return same ? problem === undefined : problem !== undefined
  }), { numRuns: 500 })
  t.pass('lookalike origins are refused')
})
