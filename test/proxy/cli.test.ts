// The `ficus` command as `npx ficus` runs it after `npm ci` (bin/ficus.js, no build): help for
// the command and for each command, exit 0; an unknown command is a usage error.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../helpers/proxy-kit.ts'

const BIN = join(PROJECT_ROOT, 'bin/ficus.js')

function ficus (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 30_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

t.test('package.json points the ficus bin at the source shim, which needs no build', async (t) => {
  const { createRequire } = await import('node:module')
  const pkg = createRequire(import.meta.url)('../../package.json') as { bin: Record<string, string> }
  t.equal(pkg.bin.ficus, 'bin/ficus.js')
})

t.test('ficus --help, ficus help and ficus help <command> list the commands and exit 0', async (t) => {
  for (const args of [['--help'], ['-h'], ['help'], ['help', '--help']]) {
    const result = ficus(...args)
    t.equal(result.status, 0, `ficus ${args.join(' ')} exits 0`)
    t.match(result.stdout, /Usage: ficus <command>[\s\S]*start[\s\S]*migrate[\s\S]*new-route/)
  }
})

t.test('every command answers --help with its own usage and exit 0', async (t) => {
  const usage: Record<string, RegExp> = { start: /Usage: ficus start/, migrate: /Usage: ficus migrate/, 'new-route': /Usage: ficus new-route <name> --path <path> --flag <flag>/, 'console-password': /Usage: ficus console-password/ }
  for (const [command, pattern] of Object.entries(usage)) {
    const result = ficus(command, '--help')
    t.equal(result.status, 0, `ficus ${command} --help exits 0`)
    t.match(result.stdout, pattern)
    t.equal(result.stderr, '')
    t.match(ficus('help', command), { status: 0, stdout: pattern }, `ficus help ${command}`)
  }
})

t.test('ficus console-password hashes the password on stdin, and refuses a short one', async (t) => {
  const { verifyPassword } = await import('../../console/passwords.ts')
  const hashed = spawnSync(process.execPath, [BIN, 'console-password'], { cwd: PROJECT_ROOT, encoding: 'utf8', input: 'correct horse battery\n', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 30_000 })
  t.equal(hashed.status, 0)
  t.ok(await verifyPassword('correct horse battery', hashed.stdout.trim()), 'the printed hash verifies the password')
  const short = spawnSync(process.execPath, [BIN, 'console-password'], { cwd: PROJECT_ROOT, encoding: 'utf8', input: 'short\n', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 30_000 })
  t.match(short, { status: 2, stdout: '', stderr: /at least 12 characters/ })
})

t.test('an unknown command or stray arguments: usage on stderr, exit 2', async (t) => {
  t.match(ficus('frobnicate'), { status: 2, stdout: '', stderr: /ficus: unknown command "frobnicate"[\s\S]*Usage: ficus <command>/ })
  t.match(ficus('start', 'now'), { status: 2, stderr: /ficus start takes no arguments/ })
})
