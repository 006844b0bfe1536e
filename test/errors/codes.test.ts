// Every error code is stable, unique project-wide and documented: operators grep for them. The
// tables are found by scanning the sources for the calls that make them, so a table added in any
// folder is checked the day it is written; and a code that no table defines fails the suite.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../../proxy/config.ts'
import { StartupError } from '../../proxy/startup-error.ts'
import { projectTsFiles, readProjectFiles, SOURCE_ROOT } from '../helpers/source-files.ts'

const CODE_SYNTAX = /^FICUS_ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/
const CODE_TOKEN = /\bFICUS_ERR_[A-Z0-9_]+\b/g
// `defineErrors({ ... })` (answers with an HTTP status) and `defineStartupErrors({ ... })` (stops startup).
const TABLE_CALL = /\bdefine(?:Startup)?Errors\s*\(/
// Tests and the benchmark only check or count codes; they define none.
const NOT_DEFINING = /^(?:test|bench)\//

interface Defined { readonly code: string, readonly where: string, readonly statusCode: number | undefined }

const everyFile = projectTsFiles()
const sources = readProjectFiles(everyFile.filter((path) => !NOT_DEFINING.test(path)))

/** The codes of every table in the project, and the files that make a table but export none. */
async function collectCodes (): Promise<{ defined: Defined[], unexported: string[] }> {
  const defined: Defined[] = []
  const unexported: string[] = []
  for (const [path, text] of sources) {
    if (!TABLE_CALL.test(text)) continue
    const module = await import(pathToFileURL(join(SOURCE_ROOT, path)).href) as Record<string, unknown>
    let tables = 0
    for (const [name, value] of Object.entries(module)) {
      const table = (value as { table?: Record<string, { statusCode?: number }> } | null)?.table
      if (typeof table !== 'object' || table === null) continue
      tables++
      for (const [code, spec] of Object.entries(table)) defined.push({ code, where: `${path} (${name})`, statusCode: spec.statusCode })
    }
    if (tables === 0) unexported.push(path)
  }
  return { defined, unexported }
}

const { defined, unexported } = await collectCodes()
const definedCodes = new Set(defined.map((d) => d.code))

/** The "Error codes" section of the README: code → status column (`503`, `exit 1`). */
function documentedCodes (): Map<string, string> {
  const readme = readFileSync(join(SOURCE_ROOT, 'README.md'), 'utf8')
  const start = readme.search(/^#+ Error codes\s*$/m)
  if (start === -1) return new Map()
  const rest = readme.slice(start)
  const bodyStart = rest.indexOf('\n') + 1
  const next = rest.slice(bodyStart).search(/^#{1,2} /m)
  const section = next === -1 ? rest : rest.slice(0, bodyStart + next)
  const rows = new Map<string, string>()
  for (const match of section.matchAll(/^\|\s*`(FICUS_ERR_[A-Z0-9_]+)`\s*\|\s*([^|]+?)\s*\|/gm)) rows.set(match[1] as string, match[2] as string)
  return rows
}

t.test('every error table is found, wherever it lives', async (t) => {
  const where = new Set(defined.map((d) => d.where.split(' ')[0]))
  for (const expected of ['core/errors.ts', 'proxy/errors.ts', 'request-path/errors.ts', 'tenants/errors.ts', 'legacy-adapter/errors.ts', 'flags/errors.ts', 'console/errors.ts', 'new-routes/attendance-register/errors.ts']) {
    t.ok(where.has(expected), expected)
  }
  t.same(unexported, [], 'every module that makes a table exports it (else its codes would go unchecked)')
})

t.test('every code is unique project-wide, spelled FICUS_ERR_* and maps to an error status', async (t) => {
  const seen = new Map<string, string>()
  for (const { code, where, statusCode } of defined) {
    t.match(code, CODE_SYNTAX, `${code} (${where})`)
    if (statusCode !== undefined) t.ok(statusCode >= 400 && statusCode <= 599, `${code} maps to an error status (${statusCode})`)
    t.notOk(seen.has(code), `${code} defined once (${where}${seen.has(code) ? ` and ${seen.get(code) ?? ''}` : ''})`)
    seen.set(code, where)
  }
  t.comment(`${seen.size} codes: ${[...seen.keys()].join(', ')}`)
})

t.test('the startup failures carry codes of the startup table', async (t) => {
  const startup = defined.filter((d) => d.statusCode === undefined).map((d) => d.code)
  t.ok(startup.includes(new ConfigError([]).code), 'ConfigError')
  t.ok(startup.includes(new StartupError('port taken').code), 'StartupError')
})

t.test('no file names a code that no table defines (a test asserting a misspelt code included)', async (t) => {
  for (const [path, text] of readProjectFiles(everyFile)) {
    for (const [code] of text.matchAll(CODE_TOKEN)) t.ok(definedCodes.has(code), `${code} in ${path} comes from a table`)
  }
})

t.test('every code is documented in the README\'s "Error codes" section, with its status', async (t) => {
  const documented = documentedCodes()
  t.ok(documented.size > 0, 'README.md has an "Error codes" table')
  for (const { code, where, statusCode } of defined) {
    t.equal(documented.get(code), statusCode === undefined ? 'exit 1' : String(statusCode), `${code} (${where}) is documented with its status`)
  }
  for (const code of documented.keys()) t.ok(definedCodes.has(code), `${code} in the README is a code of a table`)
})
