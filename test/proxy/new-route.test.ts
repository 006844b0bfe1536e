// `ficus new-route` as an engineer uses it, in a copy of the project: generate a route, run the
// test it wrote, build, start the built ficus, and see the route move from legacy to the new
// handler when its flag is turned on. The same build, under an older Node, stops with one line.
import t from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { request } from 'undici'
import { PROJECT_ROOT, waitFor, writeJson, type LogLine } from '../helpers/proxy-kit.ts'
import { startRecordingLegacy, type TeardownHost } from '../helpers/recording-legacy.ts'
import { signedInSessions } from '../helpers/signed-in.ts'

const WAIT_MS = 20_000
const FLIP_WAIT_MS = 5_000
const OLD_NODE = '/usr/bin/node'

/** The project's files (tracked and new, not ignored) in a fresh folder, sharing node_modules. */
function copyProject (t: TeardownHost): string {
  const copy = mkdtempSync(join(tmpdir(), 'ficus-new-route-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
    .split('\0').filter((file) => file !== '' && !file.startsWith('new-routes/hello-page/'))
  for (const file of files) {
    mkdirSync(dirname(join(copy, file)), { recursive: true })
    try { cpSync(join(PROJECT_ROOT, file), join(copy, file)) } catch { /* deleted in the work tree, not yet in git */ }
  }
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(copy, 'node_modules'))
  return copy
}

function run (cwd: string, command: string, args: readonly string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 180_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

t.test('new-route writes, registers and flags a route that switches with its flag once built', async (t) => {
  const copy = copyProject(t)
  const flagsFile = join(copy, 'demo/flags.json')

  const generated = run(copy, process.execPath, ['bin/ficus.js', 'new-route', 'hello-page', '--path', '/hello', '--flag', 'hello-page'])
  t.equal(generated.status, 0, `new-route exits 0: ${generated.stderr}`)
  t.match(generated.stdout, /registered helloPageRoute/)
  for (const file of ['index.ts', 'handler.ts', 'hello-page.test.ts']) t.ok(readFileSync(join(copy, 'new-routes/hello-page', file), 'utf8').length > 0, `wrote ${file}`)
  t.match(readFileSync(join(copy, 'new-routes/index.ts'), 'utf8'), /import \{ helloPageRoute \} from '\.\/hello-page\/index\.ts'[\s\S]*\n {2}helloPageRoute,\n/)
  const flags = JSON.parse(readFileSync(flagsFile, 'utf8')) as { features: Array<{ name: string, enabled: boolean }> }
  t.match(flags.features.filter((feature) => feature.name.startsWith('hello-page')), [{ name: 'hello-page', enabled: false }, { name: 'hello-page-shadow', enabled: false }])

  const again = run(copy, process.execPath, ['bin/ficus.js', 'new-route', 'hello-page', '--path', '/hello', '--flag', 'hello-page'])
  t.equal(again.status, 1, 'a second run refuses rather than overwrite')
  t.match(again.stderr, /new-routes\/hello-page already exists/)
  const samePath = run(copy, process.execPath, ['bin/ficus.js', 'new-route', 'other', '--path', '/hello', '--flag', 'other'])
  t.match(samePath, { status: 1, stderr: /GET \/hello is already declared in new-routes\/hello-page/ })

  const routeTest = run(copy, process.execPath, ['node_modules/.bin/tap', '--disable-coverage', 'new-routes/hello-page/hello-page.test.ts'])
  t.equal(routeTest.status, 0, `the generated test passes:\n${routeTest.stdout.slice(-2000)}${routeTest.stderr.slice(-1000)}`)

  const build = run(copy, process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'])
  t.equal(build.status, 0, `the project builds with the new route: ${build.stdout}${build.stderr}`)

  const legacy = await startRecordingLegacy(t)
  // The generated route is for signed-in users (the scaffold's rule): a teacher signed in on the legacy.
  const users = await signedInSessions(t, ['school-a'])
  const child = spawn(process.execPath, ['dist/proxy/main.js'], {
    cwd: copy,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LEGACY_URL: legacy.url, PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', FLAGS_FILE: flagsFile, FLAGS_POLL_MS: '100', DRAIN_DELAY_MS: '0', ...users.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited } })
  const logs: LogLine[] = []
  let partial = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as LogLine)
  })
  await waitFor(() => logs.some((line) => line.msg === 'ficus is serving') || child.exitCode !== null, WAIT_MS, 'the built ficus to serve')
  const serving = logs.find((line) => line.msg === 'ficus is serving')
  if (serving === undefined) throw new Error('ficus exited before serving')
  t.match(serving.migratedRoutes, ['hello-page <- hello-page'], 'the new route is registered')
  const origin = String(serving.public)

  const get = async (cookie = users.cookie('school-a'), headers: Record<string, string> = {}): Promise<{ status: number, servedBy: unknown, location: unknown, text: string }> => {
    const response = await request(`${origin}/hello`, { headers: { host: 'school-a.localhost', ...headers, ...(cookie === '' ? {} : { cookie }) } })
    return { status: response.statusCode, servedBy: response.headers['x-served-by'], location: response.headers.location, text: await response.body.text() }
  }
  const before = await get()
  t.equal(before.servedBy, 'legacy', 'flag off: legacy serves /hello')
  t.equal(before.text, 'legacy GET /hello')

  flags.features = flags.features.map((feature) => feature.name === 'hello-page' ? { ...feature, enabled: true } : feature)
  writeJson(flagsFile, flags)
  let after = await get()
  const editedAt = Date.now()
  while (after.servedBy !== 'new' && Date.now() - editedAt < FLIP_WAIT_MS) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    after = await get()
  }
  t.equal(after.servedBy, 'new', 'flag on: the new handler serves /hello')
  t.match(after.text, /Hello page, served by the new handler/)
  t.match(after.text, /<a href="\/attendance">Attendance<\/a>/, 'in the shared frame, with the legacy\'s navigation')
  // What a browser sends for a page; without `accept: text/html` the same request counts as an API call.
  const anonymous = await get('', { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' })
  t.match(anonymous, { status: 302, servedBy: 'new', location: '/login?next=%2Fhello' }, 'not signed in: the new side sends the browser to sign in')
  t.match(await get(''), { status: 401, servedBy: 'new' }, 'not signed in, as an API call: refused, not redirected')

  const oldNode = spawnSync(OLD_NODE, ['--version'], { encoding: 'utf8' })
  const oldMajor = Number(/^v(\d+)/.exec(oldNode.stdout ?? '')?.[1] ?? 0)
  if (oldNode.status !== 0 || oldMajor >= 24) {
    t.skip(`no Node older than 24 at ${OLD_NODE} to start the built entry with`)
    return
  }
  for (const entry of ['dist/proxy/main.js', 'dist/proxy/cli.js', 'bin/ficus.js']) {
    const old = spawnSync(OLD_NODE, [entry, 'start'], { cwd: copy, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', PORT: '0', ADMIN_PORT: '0' }, timeout: 30_000 })
    t.equal(old.status, 1, `${entry} under ${oldNode.stdout.trim()} exits 1`)
    t.equal(old.stdout, '', 'and prints nothing on stdout')
    t.match(old.stderr, /^ficus: Node 24 or newer is required, this is v\d+\.\d+\.\d+; get it with: npm install --prefix \.tools\/node24 node@24 .*\n$/, `${entry}: one line saying what is needed and how to get it`)
    t.equal(old.stderr.split('\n').length, 2, 'exactly one line')
  }
})

t.test('new-route refuses bad input with a message naming it, and writes nothing', async (t) => {
  const copy = copyProject(t)
  const before = readFileSync(join(copy, 'demo/flags.json'), 'utf8')
  const cases: Array<[string[], RegExp]> = [
    [['new-route'], /the route needs a name/],
    [['new-route', 'Bad_Name', '--path', '/x', '--flag', 'x'], /lower-case words joined by hyphens/],
    [['new-route', 'x', '--flag', 'x'], /--path is required/],
    [['new-route', 'x', '--path', 'x/../y', '--flag', 'x'], /must be an absolute path/],
    [['new-route', 'x', '--path', '/x'], /--flag is required/],
    [['new-route', 'x', '--path', '/x', '--flag', 'x', '--method', 'BREW'], /--method must be one of/]
  ]
  for (const [args, message] of cases) {
    const result = run(copy, process.execPath, ['bin/ficus.js', ...args])
    t.equal(result.status, 2, `${args.join(' ')}: usage error`)
    t.match(result.stderr, message)
  }
  writeFileSync(join(copy, 'broken-flags.json'), '{ "features": ')
  const broken = run(copy, process.execPath, ['bin/ficus.js', 'new-route', 'x', '--path', '/x', '--flag', 'x', '--flags-file', 'broken-flags.json'])
  t.match(broken, { status: 1, stderr: /cannot read the flags file .*broken-flags\.json/ })
  t.equal(readFileSync(join(copy, 'demo/flags.json'), 'utf8'), before, 'the flags file is untouched')
  t.notOk(readFileSync(join(copy, 'new-routes/index.ts'), 'utf8').includes('xRoute'), 'nothing registered')
})
