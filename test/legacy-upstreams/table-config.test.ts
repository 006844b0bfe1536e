// LEGACY_UPSTREAMS as configuration: a good table parses (defaults and overrides), a bad one
// stops startup with problems naming the variable and the place, and matching is decided on the
// canonical path, so every spelling of a path picks the upstream its canonical form picks.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { ConfigError, parseConfig } from '../../proxy/config.ts'
import { canonicalizeUrl } from '../../request-path/canonical-path.ts'
import { legacyRouterOf } from '../../proxy/server.ts'

const dir = mkdtempSync(join(tmpdir(), 'ficus-upstreams-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const TABLE = {
  upstreams: { zope: { url: 'http://zope.internal:8080/' }, timetable: { url: 'http://timetable.internal:5000', timeoutMs: 5_000 }, reports: { url: 'http://reports.internal:5000', connections: 4, keepAliveMs: 1_000 } },
  routes: { '/api/timetable/': 'timetable', '/Reports': 'reports', '/api/timetable/export/': 'reports' },
  default: 'zope',
  shards: { north: { routes: {}, default: 'reports' } }
}

function problemsOf (env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env)
    return []
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
}

t.test('a table parses inline or from a file, with defaults and overrides', async (t) => {
  const file = join(dir, 'table.json')
  writeFileSync(file, JSON.stringify(TABLE))
  for (const value of [JSON.stringify(TABLE), file]) {
    const config = parseConfig({ LEGACY_UPSTREAMS: value, LEGACY_TIMEOUT_MS: '7000' })
    t.equal(config.legacyUrl, 'http://zope.internal:8080', 'LEGACY_URL stands for the default')
    const router = legacyRouterOf(config)
    t.same(router.upstreams.map((u) => [u.name, u.url, u.timeoutMs, u.connections, u.keepAliveMs]), [
      ['zope', 'http://zope.internal:8080', 7_000, 128, 4_000],
      ['timetable', 'http://timetable.internal:5000', 5_000, 128, 4_000],
      ['reports', 'http://reports.internal:5000', 7_000, 4, 1_000]
    ])
    t.equal(router.pick('/api/timetable/week')?.name, 'timetable')
    t.equal(router.pick('/api/timetable/export/x')?.name, 'reports', 'longest prefix first')
    t.equal(router.pick('/reports')?.name, 'reports')
    t.equal(router.pick('/REPORTS/1')?.name, 'reports')
    t.equal(router.pick('/reportsx')?.name, 'zope')
    t.equal(router.pick('/api/timetable/week', 'north')?.name, 'reports', 'a shard has its own table')
    t.equal(router.pick('/', 'south'), undefined, 'an unknown shard picks nothing')
  }
  const single = legacyRouterOf(parseConfig({ LEGACY_URL: 'http://legacy.internal:8080' }))
  t.same(single.upstreams.map((u) => u.name), ['legacy'])
})

t.test('a bad table is refused with problems naming where', async (t) => {
  t.match(problemsOf({ LEGACY_UPSTREAMS: '{"upstreams":' }), [/^LEGACY_UPSTREAMS is not valid JSON/])
  t.match(problemsOf({ LEGACY_UPSTREAMS: join(dir, 'missing.json') }), [/^LEGACY_UPSTREAMS names a file that cannot be read/])
  t.match(problemsOf({ LEGACY_UPSTREAMS: JSON.stringify(TABLE), LEGACY_URL: 'http://x:1' }), [/LEGACY_URL and LEGACY_UPSTREAMS exclude each other/])
  const bad = {
    upstreams: { zope: { url: 'ftp://zope' }, a: { url: 'http://a:1' }, b: { url: 'http://a:1/other', timeoutMs: 0 }, Bad: { url: 'http://c:1' } },
    routes: { '/x/../y': 'a', '/ok': 'nobody', '/': 'a' },
    default: 'none',
    extra: 1
  }
  const problems = problemsOf({ LEGACY_UPSTREAMS: JSON.stringify(bad) })
  for (const expected of [/unknown key "extra"/, /upstreams\.zope\.url must be an http\(s\) URL/, /upstreams\.b\.url has the origin of a/, /upstreams\.b\.timeoutMs must be a whole number/,
    /upstreams\.Bad: an upstream name/, /"\/x\/\.\.\/y" is not a canonical path prefix/, /\["\/ok"\] must name one of the upstreams/, /"\/" covers every path/, /LEGACY_UPSTREAMS\.default must name one of the upstreams/]) {
    t.ok(problems.some((p) => expected.test(p)), `${String(expected)} in ${problems.join(' | ')}`)
  }
  t.ok(problems.every((p) => p.startsWith('LEGACY_UPSTREAMS')), 'each problem names the variable')
})

t.test('every spelling of a path picks what its canonical form picks', async (t) => {
  const router = legacyRouterOf(parseConfig({ LEGACY_UPSTREAMS: JSON.stringify(TABLE) }))
  const segment = fc.constantFrom('api', 'API', 'timetable', 'TimeTable', 'export', 'reports', 'Reports', 'x', 'a%62c', '%61pi', '%74imetable', '')
  await fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.boolean(), (segments, trailing) => {
    const spelled = '/' + segments.join('/') + (trailing ? '/' : '')
    const canonical = canonicalizeUrl(spelled)
    if (!canonical.ok) return
    // Decoding what canonicalisation keeps encoded cannot change a prefix match: prefixes are
    // plain, and every escape a spelling can still hold is of a reserved or non-ASCII character.
    const plain = decodeURIComponent(canonical.url).replace(/\/+/g, '/')
    t.equal(router.pick(canonical.url)?.name, router.pick(plain)?.name, spelled)
  }), { numRuns: 500 })
})
