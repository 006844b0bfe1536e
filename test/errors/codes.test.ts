// Every error code is stable, unique project-wide and documented: operators grep for them.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../../proxy/config.ts'
import { PROJECT_ROOT } from '../helpers/proxy-kit.ts'

const NOT_SOURCE = new Set(['node_modules', 'test', 'dist', 'bench', '.git', '.tools', '.tap', '.ci'])
const CODE_SYNTAX = /^FICUS_ERR_[A-Z0-9]+(?:_[A-Z0-9]+)*$/

interface Defined { readonly code: string, readonly where: string, readonly statusCode: number | undefined }

/** The codes of every `<folder>/errors.ts` table, plus the startup-only ConfigError. */
async function collectCodes (): Promise<Defined[]> {
  const defined: Defined[] = []
  for (const entry of readdirSync(PROJECT_ROOT, { withFileTypes: true })) {
    if (!entry.isDirectory() || NOT_SOURCE.has(entry.name) || entry.name.startsWith('.')) continue
    const file = join(PROJECT_ROOT, entry.name, 'errors.ts')
    if (!existsSync(file)) continue
    const module = await import(pathToFileURL(file).href) as Record<string, unknown>
    for (const value of Object.values(module)) {
      const table = (value as { table?: Record<string, { statusCode: number }> } | null)?.table
      if (typeof table !== 'object' || table === null) continue
      for (const [code, spec] of Object.entries(table)) defined.push({ code, where: `${entry.name}/errors.ts`, statusCode: spec.statusCode })
    }
  }
  defined.push({ code: new ConfigError([]).code, where: 'proxy/config.ts (ConfigError)', statusCode: undefined })
  return defined
}

t.test('every error table is found', async (t) => {
  const where = new Set((await collectCodes()).map((d) => d.where))
  for (const expected of ['proxy/errors.ts', 'tenants/errors.ts', 'legacy-adapter/errors.ts', 'flags/errors.ts']) t.ok(where.has(expected), expected)
})

t.test('every code is unique project-wide and spelled FICUS_ERR_*', async (t) => {
  const defined = await collectCodes()
  const seen = new Map<string, string>()
  for (const { code, where, statusCode } of defined) {
    t.match(code, CODE_SYNTAX, `${code} (${where})`)
    if (statusCode !== undefined) t.ok(statusCode >= 400 && statusCode <= 599, `${code} maps to an error status (${statusCode})`)
    t.notOk(seen.has(code), `${code} defined once (${where}${seen.has(code) ? ` and ${seen.get(code)}` : ''})`)
    seen.set(code, where)
  }
  t.comment(`${seen.size} codes: ${[...seen.keys()].join(', ')}`)
})

t.test('every code is documented in the README\'s "Error codes" section', async (t) => {
  const readmePath = join(PROJECT_ROOT, 'README.md')
  const readme = existsSync(readmePath) ? readFileSync(readmePath, 'utf8') : ''
  const start = readme.search(/^#+ Error codes\s*$/m)
  if (start === -1) {
    // The README gains its table with the codes; until then only uniqueness is checked.
    t.pass('README.md has no "Error codes" section yet')
    return
  }
  const rest = readme.slice(start)
  const bodyStart = rest.indexOf('\n') + 1
  const next = rest.slice(bodyStart).search(/^#{1,2} /m)
  const section = next === -1 ? rest : rest.slice(0, bodyStart + next)
  for (const { code, where } of await collectCodes()) {
    t.match(section, new RegExp(`\\b${code}\\b`), `${code} (${where}) is documented`)
  }
})
