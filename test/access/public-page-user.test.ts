// A public migrated page is for anyone, and still says who is signed in, as the legacy's pages do:
// the session is read when the request has one. A session store that cannot answer leaves the page
// anonymous rather than failing it.
import t from 'tap'
import { timetablePage } from '../../new-routes/timetable-page/index.ts'
import { closedPort, flagsOnFor, startProxy } from '../helpers/proxy-kit.ts'
import { signedInSessions } from '../helpers/signed-in.ts'

const PAGE = { path: '/timetable', headers: { accept: 'text/html' } }

t.test('a public page names the signed-in user, and offers anyone else to sign in', async (t) => {
  const users = await signedInSessions(t, ['school-a'])
  const kit = await startProxy(t, { routes: [timetablePage], flags: flagsOnFor(['school-a'], 'timetable-page'), env: users.env, withSessions: true })
  const signedIn = await kit.send({ ...PAGE, headers: { ...PAGE.headers, cookie: users.cookie('school-a') } })
  t.match({ status: signedIn.statusCode, servedBy: signedIn.header('x-served-by') }, { status: 200, servedBy: 'new' })
  t.match(signedIn.text, /Signed in as <strong class="user">teacher-of-school-a<\/strong> &middot; <a href="\/logout">Sign out<\/a>/)
  t.notMatch(signedIn.text, />Sign in</, 'no sign-in link for someone signed in')
  const anonymous = await kit.send(PAGE)
  t.equal(anonymous.statusCode, 200)
  t.match(anonymous.text, /<a href="\/login\?next=%2Ftimetable">Sign in<\/a>/)
})

t.test('a session store that cannot answer: the public page is served, anonymous', async (t) => {
  const kit = await startProxy(t, { routes: [timetablePage], flags: flagsOnFor(['school-a'], 'timetable-page'), env: { REDIS_URL: `redis://127.0.0.1:${await closedPort()}` }, withSessions: true })
  const answer = await kit.send({ ...PAGE, headers: { ...PAGE.headers, cookie: 'session=0b8e1c3a-5d2f-4e6a-9c1b-7f3e2d1a0b9c' } })
  t.match({ status: answer.statusCode, servedBy: answer.header('x-served-by') }, { status: 200, servedBy: 'new' })
  t.match(answer.text, /<a href="\/login\?next=%2Ftimetable">Sign in<\/a>/)
  t.ok(kit.logs.some((line) => line.msg === 'public route served as anonymous: the session could not be read'), 'and the store\'s failure is logged')
})
