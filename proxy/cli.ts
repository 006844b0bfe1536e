#!/usr/bin/env node
// The `ficus` command: `ficus migrate [...]` applies SQL migrations to the control database and
// every school's database; `ficus start` (or no command) runs the proxy.
import { runMigrateCli } from '../tenant-db/migrate-cli.ts'

const [command, ...rest] = process.argv.slice(2)
if (command === 'migrate') {
  process.exitCode = await runMigrateCli(rest, process.env)
} else if (command === undefined || command === 'start') {
  await import('./main.ts')
} else {
  process.stderr.write(`ficus: unknown command "${command}"\nusage: ficus start | ficus migrate [--dry-run] [--tenant ID] [--cohort NAME]\n`)
  process.exitCode = 2
}
