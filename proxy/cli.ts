#!/usr/bin/env node
// The `ficus` command: `start` (the default) runs the proxy, `migrate` applies SQL migrations,
// `new-route` scaffolds a migrated route, `console-password` hashes a console password read on
// stdin. Every command answers `--help` with exit code 0.
import './node-version.ts'

const USAGE = `Usage: ficus <command> [options]

Commands:
  start                 run the proxy (the default); configured by environment variables
  migrate               apply SQL migrations to the control database and every school's database
  new-route <name>      write a new migrated route, register it and add its flag (off)
  console-password      hash a migration-console password read on stdin (for CONSOLE_USERS)
  help [command]        this text, or a command's

Run ficus <command> --help for a command's options; README.md documents the configuration.
`

const START_USAGE = `Usage: ficus start

Runs the proxy. Every setting is an environment variable (README "Configuration"); with none set,
ficus serves the demo: an embedded legacy app, three schools from demo/tenants.json and flags from
demo/flags.json, on 127.0.0.1:8080 (admin on 127.0.0.1:9090).

  --help               this text
`

const CONSOLE_PASSWORD_USAGE = `Usage: ficus console-password < password

Reads one password on stdin (never as an argument, which a shell history or ps would keep) and
prints its hash for CONSOLE_USERS (README "The migration console"). At least 12 characters.

  --help               this text
`

const EXIT_USAGE = 2
const MIN_CONSOLE_PASSWORD_LENGTH = 12

async function run (argv: readonly string[]): Promise<number | undefined> {
  const [command, ...rest] = argv
  const wantsHelp = rest.includes('--help') || rest.includes('-h')
  switch (command) {
    case undefined:
    case 'start':
      if (wantsHelp) return print(START_USAGE)
      if (rest.length > 0) return usageError(`ficus start takes no arguments (got ${rest.join(' ')}); it is configured by environment variables`)
      await import('./main.ts')
      return undefined
    case 'migrate': {
      const { runMigrateCli } = await import('../tenant-db/migrate-cli.ts')
      return runMigrateCli(rest, process.env)
    }
    case 'new-route': {
      const { runNewRouteCli } = await import('./new-route-cli.ts')
      return runNewRouteCli(rest, { cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr })
    }
    case 'console-password':
      if (wantsHelp) return print(CONSOLE_PASSWORD_USAGE)
      return consolePassword()
    case 'help':
    case '--help':
    case '-h':
      if (rest[0] !== undefined && !rest[0].startsWith('-') && rest[0] !== 'help') return run([rest[0], '--help'])
      return print(USAGE)
    default:
      return usageError(`unknown command "${command}"`)
  }
}

async function consolePassword (): Promise<number> {
  const { hashPassword } = await import('../console/passwords.ts')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (password.length < MIN_CONSOLE_PASSWORD_LENGTH) {
    process.stderr.write(`ficus: a console password needs at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters\n`)
    return EXIT_USAGE
  }
  process.stdout.write(`${await hashPassword(password)}\n`)
  return 0
}

function print (text: string): number {
  process.stdout.write(text)
  return 0
}

function usageError (message: string): number {
  process.stderr.write(`ficus: ${message}\n\n${USAGE}`)
  return EXIT_USAGE
}

const code = await run(process.argv.slice(2))
if (code !== undefined) process.exitCode = code
