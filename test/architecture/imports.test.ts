// The arrows between top-level folders, checked on every .ts file of the project: an import that
// the table below does not allow fails the suite, so a seam is kept by the build, not by review.
import t from 'tap'
import { posix } from 'node:path'
import ts from 'typescript'
import { projectTsFiles, readProjectFiles } from '../helpers/source-files.ts'

type Allowed = Readonly<Record<string, readonly string[] | 'everything'>>

/**
 * Which top-level folder may import which (README "Layout"). A folder that is not listed may not
 * import, nor be imported: a new folder takes its place here first. The table has no cycle
 * (checked below), so the folders form layers and any folder can be read or deleted from the top.
 */
const ALLOWED: Allowed = {
  // The core: the route contract, the backend labels, the safety events and the codes several
  // surfaces answer with. It is what the other folders agree on, so it depends on none of them.
  // errors/ (the base FicusError and the table makers) is core too, in its own folder.
  core: ['errors'],
  errors: [],
  // Small tools without a concept of their own.
  config: [],
  files: [],
  html: [],
  cancellation: ['core', 'errors'],
  flags: ['core', 'errors', 'files'],
  // The registry owns its errors and how a row names its database: tenant-db reads tenants,
  // never the other way round.
  tenants: ['core', 'errors', 'files'],
  sessions: ['core', 'errors', 'config', 'cancellation'],
  access: ['core', 'errors', 'config', 'sessions'],
  'tenant-db': ['core', 'errors', 'config', 'cancellation', 'tenants'],
  // The two sides of the migration never import each other (deleting legacy is deleting its
  // folder), and neither imports the edge that wires them.
  'legacy-adapter': ['core', 'errors', 'config', 'cancellation'],
  'new-routes': ['core', 'errors', 'html', 'access', 'sessions', 'tenants', 'tenant-db'],
  // safety, metrics and new-routes meet in the core only: the safety nets report through
  // core's SafetyEvents, which metrics implements, on routes of core's MigratedRoute.
  safety: ['core', 'errors', 'config', 'cancellation', 'flags', 'tenants'],
  metrics: ['core', 'errors'],
  console: ['core', 'errors', 'config', 'html', 'flags', 'metrics', 'safety', 'tenants'],
  // The request path: the stages of one request, run by the edge. It uses the legacy adapter
  // through its seam and the route list of new-routes, never the edge that composes it.
  'request-path': ['core', 'errors', 'config', 'html', 'cancellation', 'tenants', 'flags', 'safety', 'metrics', 'legacy-adapter', 'new-routes', 'sessions', 'access'],
  // The embedded legacy stand-in speaks the legacy's session and sign-in formats.
  demo: ['access', 'html', 'sessions'],
  // The composition root: main, config and the server factory wire every part; nothing imports it.
  proxy: ['core', 'errors', 'config', 'files', 'html', 'cancellation', 'flags', 'tenants', 'sessions', 'access', 'tenant-db', 'legacy-adapter', 'new-routes', 'safety', 'metrics', 'console', 'request-path', 'demo'],
  // Outside the product: they exercise everything, and the benchmark reuses the test kits.
  test: 'everything',
  bench: 'everything',
  docs: 'everything'
}

/** Folders outside the product: they may import it, the product never imports them. */
const OUTSIDE = ['test', 'bench', 'docs']

/**
 * Folders the rest of the product may enter through these files only. The migrated features are
 * read through their route list, so a route added, moved or deleted changes nothing elsewhere.
 */
const ENTRY_POINTS: Readonly<Record<string, readonly string[]>> = {
  'new-routes': ['new-routes/index.ts']
}

interface Arrow { readonly file: string, readonly target: string, readonly from: string, readonly to: string }

function folderOf (path: string): string {
  const slash = path.indexOf('/')
  return slash === -1 ? '(project root)' : path.slice(0, slash)
}

/** Every relative import of each file (static, type-only, re-export, dynamic) that leaves its folder. */
function crossFolderArrows (files: ReadonlyMap<string, string>): Arrow[] {
  const arrows: Arrow[] = []
  for (const [file, text] of files) {
    // The compiler's own scanner: imports inside strings and comments (templates of generated
    // code, for one) are not imports.
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      if (!fileName.startsWith('./') && !fileName.startsWith('../')) continue
      const target = posix.normalize(posix.join(posix.dirname(file), fileName))
      const from = folderOf(file)
      const to = folderOf(target)
      if (from !== to) arrows.push({ file, target, from, to })
    }
  }
  return arrows
}

/** The arrows the table does not allow, each as a sentence naming the file and the rule. */
function forbiddenArrows (arrows: readonly Arrow[], allowed: Allowed): string[] {
  const problems: string[] = []
  for (const { file, target, from, to } of arrows) {
    const rule = allowed[from]
    if (rule === undefined) {
      problems.push(`${file} imports ${target}, but ${from}/ is not in the table of allowed imports`)
    } else if (rule === 'everything' ? !(to in allowed) : !rule.includes(to)) {
      problems.push(`${file} imports ${target}: ${from}/ may import ${rule === 'everything' ? 'the listed folders' : rule.length === 0 ? 'nothing of the project' : rule.join(', ')}`)
    } else if (rule !== 'everything' && ENTRY_POINTS[to] !== undefined && !ENTRY_POINTS[to].includes(target)) {
      problems.push(`${file} imports ${target}: ${to}/ is entered through ${ENTRY_POINTS[to].join(', ')}`)
    }
  }
  return problems
}

/** A cycle of the table, as `a -> b -> a`, or undefined when its arrows all run one way. */
function cycleOf (allowed: Allowed): string | undefined {
  const targets = (folder: string): readonly string[] => {
    const rule = allowed[folder] ?? []
    return rule === 'everything' ? Object.keys(allowed).filter((other) => other !== folder) : rule
  }
  const done = new Set<string>()
  const path: string[] = []
  const visit = (folder: string): string | undefined => {
    const open = path.indexOf(folder)
    if (open !== -1) return [...path.slice(open), folder].join(' -> ')
    if (done.has(folder)) return undefined
    path.push(folder)
    for (const next of targets(folder)) {
      const cycle = visit(next)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    done.add(folder)
    return undefined
  }
  for (const folder of Object.keys(allowed)) {
    const cycle = visit(folder)
    if (cycle !== undefined) return cycle
  }
  return undefined
}

/** The table without the outside folders, whose 'everything' would read as cycles. */
const PRODUCT: Allowed = Object.fromEntries(Object.entries(ALLOWED).filter(([folder]) => !OUTSIDE.includes(folder)))

t.test('no file of the project imports across a forbidden arrow', async (t) => {
  const files = readProjectFiles(projectTsFiles())
  const arrows = crossFolderArrows(files)
  t.ok(arrows.length > 100, `the imports are read (${arrows.length} between folders in ${files.size} files)`)
  t.same(forbiddenArrows(arrows, ALLOWED), [])
})

t.test('the allowed arrows all run one way: no cycle between folders', async (t) => {
  t.equal(cycleOf(PRODUCT), undefined)
  for (const [folder, rule] of Object.entries(PRODUCT)) {
    t.notOk(rule === 'everything' || rule.some((to) => OUTSIDE.includes(to)), `${folder}/ imports neither the tests nor the benchmark`)
  }
})

t.test('a forbidden import fails, whatever form it takes', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['legacy-adapter/index.ts', "import { routes } from '../new-routes/index.ts'", /legacy-adapter\/index\.ts imports new-routes\/index\.ts/],
    ['new-routes/me/index.ts', "import type { LegacyRouter } from '../../legacy-adapter/upstreams.ts'", /new-routes\/me\/index\.ts imports legacy-adapter\/upstreams\.ts/],
    ['legacy-adapter/index.ts', "import { ProxyErrors } from '../proxy/errors.ts'", /imports proxy\/errors\.ts/],
    ['metrics/registry.ts', "import type { SafetyEvents } from '../safety/safety-net.ts'", /metrics\/ may import core, errors$/],
    ['safety/safety-net.ts', "export type { FicusMetrics } from '../metrics/registry.ts'", /imports metrics\/registry\.ts/],
    ['safety/safety-net.ts', "const routes = await import('../new-routes/index.ts')", /imports new-routes\/index\.ts/],
    ['new-routes/page.ts', "import '../safety/shadow.ts'", /imports safety\/shadow\.ts/],
    ['tenants/pg-registry.ts', "import { TenantDbErrors } from '../tenant-db/errors.ts'", /tenants\/pg-registry\.ts imports tenant-db\/errors\.ts/],
    ['core/route.ts', "import type { AccessRule } from '../access/rules.ts'", /core\/ may import errors$/],
    ['request-path/guard.ts', "import { ProxyErrors } from '../proxy/errors.ts'", /request-path\/guard\.ts imports proxy\/errors\.ts/],
    ['request-path/route.ts', "import { meRoute } from '../new-routes/me/index.ts'", /new-routes\/ is entered through new-routes\/index\.ts/],
    ['proxy/new-route-cli.ts', "import { startProxy } from '../test/helpers/proxy-kit.ts'", /proxy\/ may import/],
    ['reports/weekly.ts', "import { FicusMetrics } from '../metrics/registry.ts'", /reports\/ is not in the table/]
  ]
  for (const [file, line, expected] of cases) {
    const problems = forbiddenArrows(crossFolderArrows(new Map([[file, `${line}\n`]])), ALLOWED)
    t.equal(problems.length, 1, `${file}: ${line}`)
    t.match(problems[0], expected)
  }
})

t.test('allowed imports, and imports that are only text, pass', async (t) => {
  const files = new Map([
    ['metrics/registry.ts', "import type { SafetyEvents } from '../core/safety-events.ts'\nimport { Registry } from 'prom-client'\nimport { x } from './access-log.ts'"],
    ['new-routes/me/index.ts', "import { migratedRoute } from '../../core/route.ts'\nimport { page } from '../page.ts'"],
    ['proxy/new-route-cli.ts', "const template = `import { startProxy } from '../../test/helpers/proxy-kit.ts'`\n// import '../test/x.ts'"],
    ['tenant-db/config.ts', "import { DATABASE_NAME_PLACEHOLDER } from '../tenants/database-url.ts'"],
    ['request-path/route.ts', "import { migratedRoutes } from '../new-routes/index.ts'"],
    ['test/proxy/me.test.ts', "import { meRoute } from '../../new-routes/me/index.ts'"]
  ])
  const arrows = crossFolderArrows(files)
  t.same(arrows.map((arrow) => `${arrow.from} -> ${arrow.to}`), ['metrics -> core', 'new-routes -> core', 'tenant-db -> tenants', 'request-path -> new-routes', 'test -> new-routes'])
  t.same(forbiddenArrows(arrows, ALLOWED), [])
})

t.test('a cycle in the table is found', async (t) => {
  t.equal(cycleOf({ tenants: ['errors', 'tenant-db'], 'tenant-db': ['tenants'], errors: [] }), 'tenants -> tenant-db -> tenants')
  t.equal(cycleOf({ safety: ['core', 'metrics'], metrics: ['core', 'new-routes'], 'new-routes': ['safety'], core: [] }), 'safety -> metrics -> new-routes -> safety')
  t.equal(cycleOf({ core: [], proxy: ['core'], test: 'everything' }), undefined)
  t.equal(cycleOf({ core: ['test'], test: 'everything' }), 'core -> test -> core')
})
