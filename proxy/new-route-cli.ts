// `ficus new-route <name> --path /x --flag x-page`: the first step of migrating a route. Writes
// new-routes/<name>/ (the declaration, a handler rendering a page in the shared frame, and a test
// beside them that runs the route against a recording legacy and against the new handler),
// registers the route in new-routes/index.ts and adds its flag, and its shadow companion, both
// off, to the flags file. Nothing is overwritten: an existing folder, route name, path or flag
// stops it (flags already present are kept as they are).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'

export const USAGE = `Usage: ficus new-route <name> --path <path> --flag <flag> [options]

Writes new-routes/<name>/ (index.ts: the declaration; handler.ts: the new handler; <name>.test.ts:
the route against a recording legacy and against the new handler), registers the route in
new-routes/index.ts, and adds <flag> and <flag>-shadow, both off, to the flags file.

  --path <path>        the path it serves, e.g. /reports (fastify syntax: /reports/:term)
  --flag <flag>        the feature flag that moves it to the new handler, e.g. reports-page
  --method <method>    GET (default), POST, PUT, PATCH or DELETE
  --flags-file <file>  the flags file to add the flag to (default FLAGS_FILE, else demo/flags.json)
  --help               this text

Then: npm run build, start ficus, turn <flag>-shadow on for a school to compare with legacy, and
<flag> on to move it (README "Migrate a route").
`

const EXIT_FAILED = 1
const EXIT_USAGE = 2
const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/
const FLAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/
const PATH = /^\/(?:[A-Za-z0-9._~-]+|:[A-Za-z][A-Za-z0-9]*)?(?:\/(?:[A-Za-z0-9._~-]+|:[A-Za-z][A-Za-z0-9]*))*$/
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']
const ROUTE_LIST_START = 'export const migratedRoutes: readonly MigratedRoute[] = ['
const SHADOW_SUFFIX = '-shadow'

export interface NewRouteCliIo {
  /** The project root (holds new-routes/). */
  readonly cwd: string
  readonly stdout: { write (chunk: string): unknown }
  readonly stderr: { write (chunk: string): unknown }
  readonly env?: Record<string, string | undefined>
}

export interface NewRoute {
  readonly name: string
  readonly path: string
  readonly flag: string
  readonly method: string
}

export function runNewRouteCli (argv: readonly string[], io: NewRouteCliIo): number {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        path: { type: 'string' },
        flag: { type: 'string' },
        method: { type: 'string', default: 'GET' },
        'flags-file': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (error) {
    return usage(io, [(error as Error).message])
  }
  if (parsed.values.help) {
    io.stdout.write(USAGE)
    return 0
  }
  const [name, ...extra] = parsed.positionals
  const method = (parsed.values.method ?? 'GET').toUpperCase()
  const problems: string[] = []
  if (name === undefined) problems.push('the route needs a name, e.g. ficus new-route reports --path /reports --flag reports-page')
  else if (!NAME.test(name)) problems.push(`the name "${name}" must be lower-case words joined by hyphens, e.g. reports or report-cards`)
  if (extra.length > 0) problems.push(`unexpected arguments: ${extra.join(' ')}`)
  if (parsed.values.path === undefined) problems.push('--path is required, e.g. --path /reports')
  else if (!PATH.test(parsed.values.path) || parsed.values.path === '/') problems.push(`--path "${parsed.values.path}" must be an absolute path below /, e.g. /reports or /reports/:term`)
  if (parsed.values.flag === undefined) problems.push('--flag is required, e.g. --flag reports-page')
  else if (!FLAG.test(parsed.values.flag)) problems.push(`--flag "${parsed.values.flag}" must be letters, digits, dots, hyphens or underscores, e.g. reports-page`)
  if (!METHODS.includes(method)) problems.push(`--method must be one of ${METHODS.join(', ')}`)
  if (problems.length > 0) return usage(io, problems)

  const route: NewRoute = { name: name as string, path: parsed.values.path as string, flag: parsed.values.flag as string, method }
  const env = io.env ?? process.env
  const flagsFile = parsed.values['flags-file'] ?? (env.FLAGS_FILE !== undefined && env.FLAGS_FILE !== '' ? env.FLAGS_FILE : 'demo/flags.json')
  try {
    const written = scaffoldRoute(io.cwd, route, join(io.cwd, flagsFile))
    io.stdout.write(written.map((line) => `  ${line}\n`).join('') +
      `\nNext: npm run build && npm start, then turn ${route.flag}${SHADOW_SUFFIX} on for a school to compare with legacy,\n` +
      `and ${route.flag} on when the comparisons match (README "Migrate a route").\n`)
    return 0
  } catch (error) {
    io.stderr.write(`ficus new-route: ${(error as Error).message}\n`)
    return EXIT_FAILED
  }
}

/** Writes the route's folder, registers it and adds its flags; returns what it did, one line each. */
export function scaffoldRoute (root: string, route: NewRoute, flagsPath: string): string[] {
  const routesDir = join(root, 'new-routes')
  const indexPath = join(routesDir, 'index.ts')
  if (!existsSync(indexPath)) throw new Error(`${relative(root, indexPath)} not found: run it from the ficus project's root`)
  const folder = join(routesDir, route.name)
  if (existsSync(folder)) throw new Error(`${relative(root, folder)} already exists`)
  const index = readFileSync(indexPath, 'utf8')
  if (!index.includes(ROUTE_LIST_START)) throw new Error(`${relative(root, indexPath)} no longer holds "${ROUTE_LIST_START}": register the route by hand`)
  const clash = declaredElsewhere(routesDir, route)
  if (clash !== undefined) throw new Error(clash)
  const flags = readFlags(flagsPath)

  const identifier = `${camelCase(route.name)}Route`
  mkdirSync(folder)
  writeFileSync(join(folder, 'index.ts'), declaration(route, identifier))
  writeFileSync(join(folder, 'handler.ts'), handler(route))
  writeFileSync(join(folder, `${route.name}.test.ts`), routeTest(route, identifier))
  writeAtomically(indexPath, register(index, route.name, identifier))

  const done = [
    `wrote ${relative(root, folder)}/index.ts, handler.ts and ${route.name}.test.ts`,
    `registered ${identifier} in ${relative(root, indexPath)}`
  ]
  const features = flags.features
  for (const [flag, description] of [[route.flag, `${route.method} ${route.path} (${route.name}) on the new handler; off: legacy serves it.`],
    [`${route.flag}${SHADOW_SUFFIX}`, `Shadow of ${route.name}: legacy serves, the new handler's answer is compared.`]] as const) {
    if (features.some((feature) => feature.name === flag)) {
      done.push(`kept the existing flag ${flag} in ${relative(root, flagsPath)}`)
      continue
    }
    features.push({ name: flag, description, enabled: false, strategies: [{ name: 'default', parameters: {}, constraints: [] }] })
    done.push(`added the flag ${flag} (off) to ${relative(root, flagsPath)}`)
  }
  writeAtomically(flagsPath, `${JSON.stringify(flags, null, 2)}\n`)
  return done
}

function usage (io: NewRouteCliIo, problems: readonly string[]): number {
  for (const problem of problems) io.stderr.write(`ficus new-route: ${problem}\n`)
  io.stderr.write('Try ficus new-route --help\n')
  return EXIT_USAGE
}

interface FlagsDocument { features: Array<{ name: string, [key: string]: unknown }>, [key: string]: unknown }

function readFlags (path: string): FlagsDocument {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new Error(`cannot read the flags file ${path}: ${(error as Error).message}`)
  }
  const features = (parsed as { features?: unknown } | null)?.features
  if (!Array.isArray(features)) throw new Error(`the flags file ${path} has no "features" list (Unleash client-features format)`)
  return parsed as FlagsDocument
}

// The route list is code; a declaration is found by its literal fields, which is how every
// route in new-routes/ is written (and how this generator writes them).
function declaredElsewhere (routesDir: string, route: NewRoute): string | undefined {
  for (const entry of readdirSync(routesDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const file = join(routesDir, entry.name, 'index.ts')
    if (!existsSync(file)) continue
    const source = readFileSync(file, 'utf8')
    if (source.includes(`name: '${route.name}'`)) return `a route named ${route.name} is already declared in new-routes/${entry.name}`
    if (source.includes(`url: '${route.path}'`) && source.includes(`method: '${route.method}'`)) return `${route.method} ${route.path} is already declared in new-routes/${entry.name}`
  }
  return undefined
}

function register (index: string, name: string, identifier: string): string {
  const lines = index.split('\n')
  let lastImport = -1
  lines.forEach((line, at) => { if (line.startsWith('import ')) lastImport = at })
  lines.splice(lastImport + 1, 0, `import { ${identifier} } from './${name}/index.ts'`)
  const start = lines.indexOf(ROUTE_LIST_START)
  lines.splice(start + 1, 0, `  ${identifier},`)
  return lines.join('\n')
}

function writeAtomically (path: string, content: string): void {
  const aside = `${path}.${process.pid}.tmp`
  writeFileSync(aside, content)
  renameSync(aside, path)
}

function camelCase (name: string): string {
  return name.replace(/-([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase())
}

function title (name: string): string {
  const words = name.replace(/-/g, ' ')
  return words.charAt(0).toUpperCase() + words.slice(1)
}

/** A concrete path for the test: each `:param` becomes `example`. */
export function examplePath (path: string): string {
  return path.replace(/:[A-Za-z][A-Za-z0-9]*/g, 'example')
}

function declaration (route: NewRoute, identifier: string): string {
  return `// ${title(route.name)}: ${route.method} ${route.path}, on the new handler where the flag ${route.flag} is on for
// the school; everywhere else legacy serves it, untouched.
import { migratedRoute } from '../../core/route.ts'
import { handle } from './handler.ts'

export const ${identifier} = migratedRoute({
  name: '${route.name}',
  method: '${route.method}',
  url: '${route.path}',
  flag: '${route.flag}',
  // Who may use it, as the legacy page it replaces allows: 'public', 'signed-in' or a rule on the
  // user such as { roles: ['teacher'] } (README "Who may call a migrated route").
  access: 'signed-in',
  // SHADOW: JSON paths or arrays legacy and the new handler may differ on, for the comparison,
  // e.g. shadow: { ignore: ['generatedAt'], unordered: ['rows'] },
  handler: handle
})
`
}

function handler (route: NewRoute): string {
  const safe = route.method === 'GET'
  return `// The new handler of ${route.name}. ${safe ? 'A GET must stay free of side effects: shadow runs it\n// alongside legacy to compare their answers.' : 'Writes go through auditedWrite (tenant-db) on the school\'s own database.'}
import type { FastifyReply, FastifyRequest } from 'fastify'
import { page } from '../page.ts'

export async function handle (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  // request.tenant is the school (request.tenant.db its own database); request.session the
  // session shared with legacy (await request.session.load()).
  return reply.type('text/html; charset=utf-8').send(page(request, '${title(route.name)}', \`
      <p class="lead">${title(route.name)}, served by the new handler.</p>\`))
}
`
}

function routeTest (route: NewRoute, identifier: string): string {
  const path = examplePath(route.path)
  return `// ${route.name} through the edge: with its flag off the request reaches legacy untouched; with it
// on, the new handler answers and legacy sees nothing.
import t from 'tap'
import { flagsOnFor, startProxy } from '../../test/helpers/proxy-kit.ts'
import { signedInSessions } from '../../test/helpers/signed-in.ts'
import { ${identifier} } from './index.ts'

const FLAG = '${route.flag}'
const PATH = '${path}'

t.test('flag off for the school: legacy serves ${route.method} ${path}', async (t) => {
  const proxy = await startProxy(t, { routes: [${identifier}], flags: flagsOnFor(['school-b'], FLAG) })
  const answer = await proxy.send({ method: '${route.method}', path: PATH, host: 'school-a.localhost' })
  t.equal(answer.header('x-served-by'), 'legacy')
  t.equal(proxy.legacy.sole().requestLine, '${route.method} ${path} HTTP/1.1')
})

t.test('flag on for the school: the new handler serves ${route.method} ${path} to a signed-in user, and no one else', async (t) => {
  // A user signed in on the legacy, as the shared session store (Redis) holds them.
  const users = await signedInSessions(t, ['school-a'])
  const proxy = await startProxy(t, { routes: [${identifier}], flags: flagsOnFor(['school-a'], FLAG), withSessions: true, env: users.env })
  const anonymous = await proxy.send({ method: '${route.method}', path: PATH, host: 'school-a.localhost', headers: { accept: 'application/json' } })
  t.equal(anonymous.statusCode, 401, 'not signed in: refused before the handler runs')
  const host = 'school-a.localhost'
  const answer = await proxy.send({ method: '${route.method}', path: PATH, host, headers: { cookie: users.cookie('school-a'), ...users.csrfHeaders('school-a', host) } })
  t.equal(answer.statusCode, 200)
  t.equal(answer.header('x-served-by'), 'new')
  t.match(answer.text, /${title(route.name)}/)
  t.equal(proxy.legacy.requests.length, 0)
})
`
}
