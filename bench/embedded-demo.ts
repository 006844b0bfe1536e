// The embedded demo's footprint, as a new user meets it: `ficus start` with nothing configured
// (embedded legacy app, PGlite school databases, in-memory sessions), the attendance register on
// for all three demo schools. Measures the first register request after /readyz says ready, then
// the RSS of the ficus process (from /proc) after every page and every school's register was used.
//   node bench/embedded-demo.ts [--entry dist/proxy/main.js] [--rounds 3]
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const MALLOC_TRIM_THRESHOLD = '67108864'
const READY_TIMEOUT_MS = 120_000
const SCHOOLS = ['school-a', 'school-b', 'school-c']
const PAGES = ['/', '/attendance', '/timetable', '/reports', '/sign-in', '/me']
const REGISTER = '/attendance/3b?date=2026-11-27'

const { values } = parseArgs({ options: { entry: { type: 'string', default: 'proxy/main.ts' }, rounds: { type: 'string', default: '3' } } })

function rssMb (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN)
  return Math.round(kb / 1024)
}

async function get (url: string, host?: string, cookie?: string): Promise<{ status: number, ms: number }> {
  const started = performance.now()
  // undici's request, not fetch: fetch drops a Host header, and the school is in the Host.
  const response = await request(url, { headers: { ...(host === undefined ? {} : { host }), ...(cookie === undefined ? {} : { cookie }) } })
  await response.body.arrayBuffer()
  return { status: response.statusCode, ms: performance.now() - started }
}

// The register is for teachers: sign in on the demo's legacy sign-in page, as a visitor does.
async function signIn (origin: string, school: string): Promise<string> {
  const response = await request(`${origin}/login`, { method: 'POST', headers: { host: `${school}.localhost`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=teacher&next=%2F' })
  await response.body.arrayBuffer()
  const cookie = String(response.headers['set-cookie'] ?? '').split(';')[0] ?? ''
  if (response.statusCode !== 303 || cookie === '') throw new Error(`${school} sign-in answered ${response.statusCode}`)
  return cookie
}

interface Round { readyMs: number, firstRegisterMs: number, rssReadyMb: number, rssAfterMb: number, maxRssMb: number }

async function round (): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-embedded-bench-'))
  const flags = JSON.parse(readFileSync(join(ROOT, 'demo/flags.json'), 'utf8')) as { features: Array<{ name: string, strategies: Array<{ constraints?: Array<{ values: string[] }> }> }> }
  for (const feature of flags.features) {
    if (feature.name === 'attendance-register') for (const strategy of feature.strategies) for (const constraint of strategy.constraints ?? []) constraint.values = [...SCHOOLS]
  }
  writeFileSync(join(dir, 'flags.json'), JSON.stringify(flags))
  const started = performance.now()
  const child = spawn(process.execPath, ['--max-semi-space-size=8', join(ROOT, values.entry)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, MALLOC_TRIM_THRESHOLD_: MALLOC_TRIM_THRESHOLD, PORT: '0', ADMIN_PORT: '0', DEMO_LEGACY_PORT: '0', FLAGS_FILE: join(dir, 'flags.json'), ACCESS_LOG: 'false' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  try {
    const pid = child.pid as number
    let serving: { public: string, admin: string } | undefined
    while (serving === undefined) {
      if (performance.now() - started > READY_TIMEOUT_MS || child.exitCode !== null) throw new Error(`ficus did not start: ${output}`)
      await sleep(20)
      const line = output.split('\n').find((candidate) => candidate.includes('"msg":"ficus is serving"'))
      if (line !== undefined) serving = JSON.parse(line) as { public: string, admin: string }
    }
    const origin = serving.public
    const admin = serving.admin
    while ((await get(`${admin}/readyz`)).status !== 200) {
      if (performance.now() - started > READY_TIMEOUT_MS) throw new Error('not ready in time')
      await sleep(20)
    }
    const readyMs = performance.now() - started
    const rssReadyMb = rssMb(pid)
    const cookies = new Map<string, string>()
    for (const school of SCHOOLS) cookies.set(school, await signIn(origin, school))
    const first = await get(`${origin}${REGISTER}`, 'school-a.localhost', cookies.get('school-a'))
    if (first.status !== 200) throw new Error(`register answered ${first.status}`)
    let maxRssMb = rssMb(pid)
    for (const school of SCHOOLS) {
      for (const path of [...PAGES, REGISTER]) {
        const answer = await get(`${origin}${path}`, `${school}.localhost`, cookies.get(school))
        if (path === REGISTER && answer.status !== 200) throw new Error(`${school} register answered ${answer.status}`)
        maxRssMb = Math.max(maxRssMb, rssMb(pid))
      }
    }
    await sleep(1_000)
    const rssAfterMb = rssMb(pid)
    return { readyMs: Math.round(readyMs), firstRegisterMs: Math.round(first.ms), rssReadyMb, rssAfterMb, maxRssMb: Math.max(maxRssMb, rssAfterMb) }
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
}

const rounds = Number(values.rounds)
const results: Round[] = []
for (let i = 0; i < rounds; i++) {
  const result = await round()
  results.push(result)
  console.log(`round ${i + 1}: ready after ${result.readyMs} ms, first register request ${result.firstRegisterMs} ms, RSS ${result.rssReadyMb} MB at ready, max ${result.maxRssMb} MB, ${result.rssAfterMb} MB after every page and all three registers`)
}
const median = (pick: (r: Round) => number): number => results.map(pick).sort((a, b) => a - b)[Math.floor(results.length / 2)] as number
console.log(`median of ${rounds}: first register request ${median((r) => r.firstRegisterMs)} ms after ready, RSS max ${median((r) => r.maxRssMb)} MB (${median((r) => r.rssAfterMb)} MB after all pages), ready after ${median((r) => r.readyMs)} ms`)
