#!/usr/bin/env node
// The `ficus` command: `ficus migrate [...]` applies SQL migrations to the control database and
// every school's database; `ficus console-password` hashes a console password read on stdin;
// `ficus start` (or no command) runs the proxy.
import { runMigrateCli } from '../tenant-db/migrate-cli.ts'

const [command, ...rest] = process.argv.slice(2)
if (command === 'migrate') {
  process.exitCode = await runMigrateCli(rest, process.env)
} else if (command === 'console-password') {
  // The password comes on stdin, never as an argument a shell history or `ps` would keep.
  const { hashPassword } = await import('../console/passwords.ts')
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (password.length < 12) {
    process.stderr.write('ficus: a console password needs at least 12 characters\n')
    process.exitCode = 2
  } else process.stdout.write(`${await hashPassword(password)}\n`)
} else if (command === undefined || command === 'start') {
  await import('./main.ts')
} else {
  process.stderr.write(`ficus: unknown command "${command}"\nusage: ficus start | ficus migrate [--dry-run] [--tenant ID] [--cohort NAME] | ficus console-password < password\n`)
  process.exitCode = 2
}
