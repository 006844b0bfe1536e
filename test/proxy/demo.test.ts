// The demo as `npm start` serves it: ficus with nothing configured but free ports and a copy of
// the demo's flags file (so the edit below leaves the repository alone).
import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { PROJECT_ROOT, spawnFicus, waitFor, writeJson } from '../helpers/proxy-kit.ts'

// The bound for a flags edit to take effect.
const FLIP_BOUND_MS = 2_000
const WAIT_MS = 5_000
const READY_WAIT_MS = 120_000

async function get (origin: string, path: string, host: string, cookie?: string, timeoutMs = WAIT_MS): Promise<{ status: number, servedBy: string | undefined, text: string }> {
  const response = await request(`${origin}${path}`, { headers: { host, accept: 'text/html', ...(cookie === undefined ? {} : { cookie }) }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  const servedBy = response.headers['x-served-by']
  return { status: response.statusCode, servedBy: Array.isArray(servedBy) ? servedBy.join() : servedBy, text: await response.body.text() }
}

t.test('the demo serves school-a\'s attendance from new and school-b\'s from legacy, and a flags edit moves school-b', async (t) => {
  t.ok(Number(process.versions.node.split('.')[0]) >= 24, `runs on Node 24 or later (${process.version})`)
  const dir = mkdtempSync(join(tmpdir(), 'ficus-demo-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  copyFileSync(join(PROJECT_ROOT, 'demo/flags.json'), flagsFile)

  const ficus = spawnFicus(t, { HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: flagsFile })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  const origin = String(serving.public)
  const admin = String(serving.admin)
  t.match(origin, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, 'the log gives the bound public address')
  t.match(admin, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, 'the log gives the bound admin address')
  t.ok(ficus.logs.some((line) => /LEGACY_URL not set/.test(line.msg)), 'the log says the embedded legacy app is in use')

  // Ready once the schools' embedded databases exist: initdb in WebAssembly takes seconds, during
  // which the process answers nothing (it runs on the event loop).
  let readyz = await get(admin, '/readyz', '127.0.0.1', undefined, READY_WAIT_MS)
  for (const started = performance.now(); readyz.status !== 200 && performance.now() - started < READY_WAIT_MS;) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    readyz = await get(admin, '/readyz', '127.0.0.1', undefined, READY_WAIT_MS)
  }
  t.equal(readyz.status, 200, 'ready on the admin port')

  // The attendance pages are for teachers, on both sides: sign in on the legacy first.
  const signIn = async (host: string, user: string): Promise<string> => {
    const response = await request(`${origin}/login`, { method: 'POST', headers: { host, 'content-type': 'application/x-www-form-urlencoded' }, body: `user=${user}&next=%2Fattendance`, headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS })
    await response.body.text()
    t.equal(response.headers.location, '/attendance', 'the demo sign-in sends the user back to next')
    return String(response.headers['set-cookie']).split(';')[0] ?? ''
  }
  const anonymous = await get(origin, '/attendance', 'school-a.localhost')
  t.equal(anonymous.status, 302, 'not signed in: sent to sign in')
  t.equal(anonymous.servedBy, 'new')
  const teacherA = await signIn('school-a.localhost', 'teacher')
  const a = await get(origin, '/attendance', 'school-a.localhost', teacherA)
  t.equal(a.status, 200)
  t.equal(a.servedBy, 'new')
  t.match(a.text, /Attendance/)
  t.match(a.text, /Signed in as <strong class="user">teacher<\/strong>/, 'the migrated page shows who is signed in')
  t.notMatch(a.text, /\(legacy\)/)
  const officeA = await signIn('school-a.localhost', 'office')
  const office = await get(origin, '/attendance', 'school-a.localhost', officeA)
  t.equal(office.status, 403, 'the office may not see the register')
  const teacherB = await signIn('school-b.localhost', 'teacher')
  t.equal((await get(origin, '/attendance', 'school-b.localhost')).status, 302, 'the legacy page wants a sign-in too')
  t.equal((await get(origin, '/attendance', 'school-b.localhost', await signIn('school-b.localhost', 'office'))).status, 403, 'and a teacher')
  const b = await get(origin, '/attendance', 'school-b.localhost', teacherB)
  t.equal(b.status, 200)
  t.equal(b.servedBy, 'legacy')
  t.match(b.text, /\(legacy\)/)
  t.equal((await get(origin, '/timetable', 'school-a.localhost')).servedBy, 'legacy', 'timetable is not migrated anywhere')

  t.equal((await get(admin, '/livez', '127.0.0.1')).status, 200)
  const publicReadyz = await get(origin, '/readyz', 'school-a.localhost')
  t.equal(publicReadyz.servedBy, 'legacy', 'the public port forwards /readyz to legacy like any path')

  const flags = JSON.parse(readFileSync(flagsFile, 'utf8'))
  flags.features[0].strategies[0].constraints[0].values.push('school-b')
  const editedAt = performance.now()
  writeJson(flagsFile, flags)
  let servedBy: string | undefined
  while (servedBy !== 'new' && performance.now() - editedAt < WAIT_MS) {
    servedBy = (await get(origin, '/attendance', 'school-b.localhost', teacherB)).servedBy
    if (servedBy !== 'new') await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const latency = Math.round(performance.now() - editedAt)
  t.comment(`school-b moved to new ${latency} ms after the flags edit`)
  t.equal(servedBy, 'new')
  t.ok(latency <= FLIP_BOUND_MS, `within ${FLIP_BOUND_MS} ms (took ${latency} ms)`)

  ficus.child.kill('SIGTERM')
  const exit = await ficus.exited
  t.same(exit, { code: 0, signal: null }, 'SIGTERM stops it cleanly')
})
