// A variable that is set but empty is a mistake (a template that lost its value), never "unset":
// defaults stand in only for absent variables. Checked over every variable the README's
// "Configuration" table documents, in random subsets and with random blank spellings.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, parseConfig } from '../../proxy/config.ts'
import { MIN_SECRET_BYTES, parseSessionConfig } from '../../sessions/config.ts'
import { PROJECT_ROOT, spawnFicus } from '../helpers/proxy-kit.ts'

// The two variables whose empty value is documented to mean something.
const EMPTY_MEANS_SOMETHING = new Set(['SERVED_BY_HEADER', 'SESSION_KEY_PREFIX'])

function documentedVariables (): string[] {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.search(/^## Configuration\s*$/m))
  const table = section.slice(0, section.slice(3).search(/^## /m) + 3)
  return [...table.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1] as string)
}

function problemsOf (env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

const variables = documentedVariables().filter((name) => !EMPTY_MEANS_SOMETHING.has(name))
const blank = fc.constantFrom('', ' ', '\t', '  ', ' \t ')

t.test('the README documents the variables this test walks', async (t) => {
  t.ok(variables.length > 60, `${variables.length} variables`)
  for (const name of ['LEGACY_URL', 'REDIS_URL', 'DATABASE_URL', 'SHADOW_FLAG_SUFFIX', 'SESSION_SECRET', 'FLAGS_FILE']) t.ok(variables.includes(name), name)
})

t.test('every variable set to an empty or blank value is one problem naming it, whatever else is empty', async (t) => {
  const subsets = fc.uniqueArray(fc.constantFrom(...variables), { minLength: 1, maxLength: 12 })
  fc.assert(fc.property(subsets, fc.array(blank, { minLength: 12, maxLength: 12 }), (names, blanks) => {
    const env = Object.fromEntries(names.map((name, i) => [name, blanks[i] as string]))
    const problems = problemsOf(env)
    for (const name of names) {
      const mine = problems.filter((problem) => problem.startsWith(`${name} `))
      if (mine.length !== 1 || !/set but empty/.test(mine[0] as string)) throw new Error(`${name}=${JSON.stringify(env[name])}: ${JSON.stringify(problems)}`)
    }
    if (problems.length !== names.length) throw new Error(`expected ${names.length} problems, got ${JSON.stringify(problems)}`)
  }), { numRuns: 300 })
  t.pass('300 random subsets')
})

t.test('each variable on its own: empty is refused, absent takes the default', async (t) => {
  for (const name of variables) {
    t.match(problemsOf({ [name]: '' }), [new RegExp(`^${name} is set but empty.*e\\.g\\. `)], name)
  }
  t.same(problemsOf({}), [], 'nothing set: every default applies')
})

t.test('the documented exceptions: an empty SERVED_BY_HEADER disables it, an empty SESSION_KEY_PREFIX means bare ids', async (t) => {
  t.equal(parseConfig({ SERVED_BY_HEADER: '' }).servedByHeader, undefined)
  t.equal(parseConfig({ SESSION_KEY_PREFIX: '' }).sessions.keyPrefix, '')
})

t.test(`SESSION_SECRET shorter than ${MIN_SECRET_BYTES} bytes is refused unless SESSION_SECRET_ALLOW_WEAK=true`, async (t) => {
  const secret = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== '')
  fc.assert(fc.property(secret, fc.constantFrom(undefined, 'false', 'true'), (value, allowWeak) => {
    const problems: string[] = []
    const config = parseSessionConfig({
      SESSION_SIGNER: 'itsdangerous',
      SESSION_SECRET: value,
      ...(allowWeak === undefined ? {} : { SESSION_SECRET_ALLOW_WEAK: allowWeak })
    }, problems)
    const weak = Buffer.byteLength(value, 'utf8') < MIN_SECRET_BYTES
    const refused = problems.some((problem) => problem.startsWith('SESSION_SECRET must be at least 16 bytes'))
    if (refused !== (weak && allowWeak !== 'true')) throw new Error(`${JSON.stringify(value)} (${Buffer.byteLength(value)} bytes), allow=${String(allowWeak)}: ${JSON.stringify(problems)}`)
    if (!refused && config.secret !== value) throw new Error('an accepted secret is kept byte for byte')
  }), { numRuns: 500 })
  t.pass('500 random secrets')
  t.match(problemsOf({ SESSION_SECRET_ALLOW_WEAK: 'maybe' }), [/^SESSION_SECRET_ALLOW_WEAK must be one of false, true/])
})

t.test('node proxy/main.ts with a variable set but empty exits 1 naming it, no stack trace', async (t) => {
  const names = fc.sample(fc.constantFrom(...variables), { numRuns: 3, seed: Date.now() | 0 })
  for (const name of new Set(['LEGACY_URL', ...names])) {
    const ficus = spawnFicus(t, { ADMIN_PORT: '0', PORT: '0', [name]: '' })
    const exit = await ficus.exited
    const stderr = ficus.stderr()
    t.equal(exit.code, 1, `${name}=: exit 1`)
    t.match(stderr, new RegExp(`^\\s*- ${name} is set but empty`, 'm'), `${name} named on stderr`)
    t.notMatch(stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace')
    t.equal(ficus.logs.length, 0, 'nothing started')
  }
})
