// Finding and removing the session cookie in a Cookie header, leaving the rest byte for byte.
import t from 'tap'
import { readCookie, removeCookie } from '../../sessions/cookies.ts'

t.test('reads the first cookie of that exact name', async (t) => {
  t.equal(readCookie('a=1; session=abc; b=2', 'session'), 'abc')
  t.equal(readCookie('session=first; session=second', 'session'), 'first')
  t.equal(readCookie('xsession=1; session2=2; my_session=3', 'session'), undefined)
  t.equal(readCookie('a=1;session =  "quoted" ;b=2', 'session'), 'quoted')
  t.equal(readCookie('session=', 'session'), '')
  t.equal(readCookie(undefined, 'session'), undefined)
  t.equal(readCookie('a=session=1', 'session'), undefined, 'a value that looks like a pair is not one')
})

t.test('removes only that cookie and keeps every other byte', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['session=x', undefined],
    ['session=x; b=2', 'b=2'],
    ['a=1; session=x', 'a=1'],
    ['a=1; session=x; b=2', 'a=1; b=2'],
    ['a=1;session=x;b=2', 'a=1;b=2'],
    ['a="q; r"; session=x;  b=2 ; sessionid=keep', 'a="q; r";  b=2 ; sessionid=keep'],
    ['session=x; a=1; session=y', 'a=1'],
    ['a=1; b=2', 'a=1; b=2'],
    ['a=1; session=x; ', 'a=1; ']
  ]
  for (const [header, expected] of cases) t.equal(removeCookie(header, 'session'), expected, header)
  const unchanged = 'a=1; b=2'
  t.equal(removeCookie(unchanged, 'session'), unchanged, 'no session cookie: the same string back')
})
