// The legacy routing table: which legacy app serves which paths. Legacy is a Zope monolith plus
// Flask services under one URL; each is a named upstream with its own pool settings, path
// prefixes choose among them (longest first) and everything else goes to the default. A school
// on a legacy shard of its own has a table of its own, naming upstreams of that shard only.
//
//   { "upstreams": { "zope": { "url": "http://zope:8080" },
//                    "timetable": { "url": "http://timetable:5000", "timeoutMs": 5000 } },
//     "routes": { "/api/timetable/": "timetable" },
//     "default": "zope",
//     "shards": { "north": { "routes": {}, "default": "zope-north" } } }

export interface UpstreamSettings {
  readonly timeoutMs: number
  readonly connections: number
  readonly keepAliveMs: number
}

export interface LegacyUpstream extends UpstreamSettings {
  /** A configured name: also the `upstream` label of metrics and the access log. */
  readonly name: string
  /** Base URL, no trailing slash (as LEGACY_URL). */
  readonly url: string
  /** scheme://host:port of `url`: each upstream has an origin, hence a pool, of its own. */
  readonly origin: string
  /** Position in the table's list: the metrics' slot for this upstream. */
  readonly index: number
  /** Upgrade protocols (lower case, e.g. `websocket`) tunnelled to this upstream; empty: none. */
  readonly upgrades: readonly string[]
}

interface PrefixRoute {
  /** Lower case, no trailing slash; '' only for the default. */
  readonly prefix: string
  readonly upstream: LegacyUpstream
}

export interface LegacyTableSpec {
  readonly upstreams: readonly LegacyUpstream[]
  readonly routes: ReadonlyArray<{ readonly prefix: string, readonly upstream: string }>
  readonly default: string
  readonly shards: Readonly<Record<string, { readonly routes: ReadonlyArray<{ readonly prefix: string, readonly upstream: string }>, readonly default: string }>>
}

/** One table: prefix routes longest first, then the default. */
class PrefixTable {
  readonly #routes: readonly PrefixRoute[]
  readonly default: LegacyUpstream

  constructor (routes: PrefixRoute[], fallback: LegacyUpstream) {
    this.#routes = routes.sort((a, b) => b.prefix.length - a.prefix.length)
    this.default = fallback
  }

  get routes (): readonly PrefixRoute[] {
    return this.#routes
  }

  /**
   * `path` is the canonical path (request-path/canonical-path.ts), without its query. Matched without
   * regard to case, as the router matches migrated routes, and on whole segments: `/reports`
   * covers `/reports` and `/reports/x`, never `/reportsx`.
   */
  pick (path: string): LegacyUpstream {
    const routes = this.#routes
    if (routes.length === 0) return this.default
    const lower = path.toLowerCase()
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as PrefixRoute
      const prefix = route.prefix
      if (lower.startsWith(prefix) && (lower.length === prefix.length || lower.charCodeAt(prefix.length) === 47)) return route.upstream
    }
    return this.default
  }
}

export class LegacyRouter {
  readonly upstreams: readonly LegacyUpstream[]
  readonly #main: PrefixTable
  readonly #shards: ReadonlyMap<string, PrefixTable>

  constructor (spec: LegacyTableSpec) {
    this.upstreams = spec.upstreams
    const byName = new Map(spec.upstreams.map((upstream) => [upstream.name, upstream]))
    const table = (routes: LegacyTableSpec['routes'], fallback: string): PrefixTable =>
      new PrefixTable(routes.map((route) => ({ prefix: normalPrefix(route.prefix), upstream: byName.get(route.upstream) as LegacyUpstream })), byName.get(fallback) as LegacyUpstream)
    this.#main = table(spec.routes, spec.default)
    this.#shards = new Map(Object.entries(spec.shards).map(([name, shard]) => [name, table(shard.routes, shard.default)]))
  }

  /** The one-upstream table LEGACY_URL stands for. */
  static single (url: string, settings: UpstreamSettings, upgrades: readonly string[] = [], name = 'legacy'): LegacyRouter {
    return new LegacyRouter({ upstreams: [{ name, url, origin: new URL(url).origin, index: 0, upgrades, ...settings }], routes: [], default: name, shards: {} })
  }

  /** The upstream of `path` for a school on `shard` (undefined: the main table); undefined for an unknown shard. */
  pick (path: string, shard?: string): LegacyUpstream | undefined {
    if (shard === undefined) return this.#main.pick(path)
    return this.#shards.get(shard)?.pick(path)
  }

  get (name: string): LegacyUpstream | undefined {
    return this.upstreams.find((upstream) => upstream.name === name)
  }

  hasShard (shard: string): boolean {
    return this.#shards.has(shard)
  }

  get shardNames (): readonly string[] {
    return [...this.#shards.keys()]
  }
}

function normalPrefix (prefix: string): string {
  return prefix.toLowerCase().replace(/\/+$/, '')
}

const NAME = /^[a-z][a-z0-9_-]{0,62}$/
const PREFIX = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/
const MAX_UPSTREAMS = 256
/** An Upgrade token (RFC 9110 section 7.8): a name with an optional /version. */
export const PROTOCOL = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\/[A-Za-z0-9!#$%&'*+.^_`|~-]+)?$/

/**
 * Checks a parsed LEGACY_UPSTREAMS document; `problems` get one line each, naming where.
 * Per-upstream `timeoutMs`, `connections` and `keepAliveMs` override `defaults`.
 */
export function parseLegacyTable (document: unknown, defaults: UpstreamSettings, problems: string[]): LegacyTableSpec | undefined {
  const where = 'LEGACY_UPSTREAMS'
  const before = problems.length
  if (!isObject(document)) {
    problems.push(`${where} must be a JSON object with "upstreams", "routes" and "default", e.g. {"upstreams":{"zope":{"url":"http://zope:8080"}},"routes":{},"default":"zope"}`)
    return undefined
  }
  const known = new Set(['upstreams', 'routes', 'default', 'shards'])
  for (const key of Object.keys(document)) if (!known.has(key)) problems.push(`${where} has an unknown key "${key}" (allowed: ${[...known].join(', ')})`)
  const upstreams: LegacyUpstream[] = []
  const origins = new Map<string, string>()
  if (!isObject(document.upstreams) || Object.keys(document.upstreams).length === 0) {
    problems.push(`${where}.upstreams must name at least one upstream, e.g. {"zope":{"url":"http://zope:8080"}}`)
  } else {
    const entries = Object.entries(document.upstreams)
    if (entries.length > MAX_UPSTREAMS) problems.push(`${where}.upstreams names ${entries.length} upstreams, at most ${MAX_UPSTREAMS}`)
    for (const [name, entry] of entries) {
      const at = `${where}.upstreams.${name}`
      if (!NAME.test(name)) problems.push(`${at}: an upstream name is lower-case letters, digits, - and _, starting with a letter, e.g. timetable-svc`)
      if (!isObject(entry)) { problems.push(`${at} must be an object with a "url"`); continue }
      for (const key of Object.keys(entry)) if (!['url', 'timeoutMs', 'connections', 'keepAliveMs', 'upgrades'].includes(key)) problems.push(`${at} has an unknown key "${key}" (allowed: url, timeoutMs, connections, keepAliveMs, upgrades)`)
      const upgrades = entry.upgrades ?? []
      if (!Array.isArray(upgrades) || !upgrades.every((protocol) => typeof protocol === 'string' && PROTOCOL.test(protocol) && protocol.toLowerCase() !== 'h2c')) {
        problems.push(`${at}.upgrades must list the upgrade protocols tunnelled to it, e.g. ["websocket"]`)
      }
      const url = upstreamUrl(entry.url)
      if (url === undefined) { problems.push(`${at}.url must be an http(s) URL with no query, e.g. http://zope.internal:8080`); continue }
      const origin = new URL(url).origin
      const sharing = origins.get(origin)
      if (sharing !== undefined) problems.push(`${at}.url has the origin of ${sharing} (${origin}): each upstream has its own host:port, hence its own pool`)
      origins.set(origin, name)
      upstreams.push(Object.freeze({
        name,
        url,
        origin,
        index: upstreams.length,
        upgrades: Object.freeze(Array.isArray(upgrades) ? upgrades.map((protocol) => String(protocol).toLowerCase()) : []),
        timeoutMs: whole(entry.timeoutMs, defaults.timeoutMs, 1, 3_600_000, `${at}.timeoutMs`, problems),
        connections: whole(entry.connections, defaults.connections, 1, 65_536, `${at}.connections`, problems),
        keepAliveMs: whole(entry.keepAliveMs, defaults.keepAliveMs, 1, 3_600_000, `${at}.keepAliveMs`, problems)
      }))
    }
  }
  const names = new Set(upstreams.map((upstream) => upstream.name))
  const routes = routeList(document.routes, `${where}.routes`, names, problems)
  const fallback = defaultName(document.default, `${where}.default`, names, problems)
  const shards: Record<string, LegacyTableSpec['shards'][string]> = {}
  if (document.shards !== undefined) {
    if (!isObject(document.shards)) problems.push(`${where}.shards must be an object of shard name -> {"routes", "default"}`)
    else {
      for (const [name, shard] of Object.entries(document.shards)) {
        const at = `${where}.shards.${name}`
        if (!NAME.test(name)) problems.push(`${at}: a shard name is lower-case letters, digits, - and _, starting with a letter, e.g. north`)
        if (!isObject(shard)) { problems.push(`${at} must be an object with "routes" and "default"`); continue }
        shards[name] = { routes: routeList(shard.routes ?? {}, `${at}.routes`, names, problems), default: defaultName(shard.default, `${at}.default`, names, problems) }
      }
    }
  }
  if (problems.length > before) return undefined
  return { upstreams, routes, default: fallback, shards }
}

function routeList (value: unknown, at: string, names: ReadonlySet<string>, problems: string[]): Array<{ prefix: string, upstream: string }> {
  if (!isObject(value)) {
    problems.push(`${at} must be an object of path prefix -> upstream name, e.g. {"/api/timetable/":"timetable"}`)
    return []
  }
  const seen = new Set<string>()
  const routes: Array<{ prefix: string, upstream: string }> = []
  for (const [prefix, upstream] of Object.entries(value)) {
    if (!PREFIX.test(prefix) || prefix.includes('//') || /(^|\/)\.\.?(\/|$)/.test(prefix) || /%(?![0-9A-Fa-f]{2})/.test(prefix)) {
      problems.push(`${at}: "${prefix}" is not a canonical path prefix, e.g. /api/timetable/`)
      continue
    }
    if (normalPrefix(prefix) === '') { problems.push(`${at}: "${prefix}" covers every path; say so with "default"`); continue }
    const key = normalPrefix(prefix)
    if (seen.has(key)) problems.push(`${at}: "${prefix}" repeats a prefix (prefixes match without regard to case and trailing slash)`)
    seen.add(key)
    if (typeof upstream !== 'string' || !names.has(upstream)) { problems.push(`${at}["${prefix}"] must name one of the upstreams (${[...names].join(', ')})`); continue }
    routes.push({ prefix, upstream })
  }
  return routes
}

function defaultName (value: unknown, at: string, names: ReadonlySet<string>, problems: string[]): string {
  if (typeof value === 'string' && names.has(value)) return value
  problems.push(`${at} must name one of the upstreams (${[...names].join(', ')}): it serves every path no prefix claims`)
  return ''
}

function upstreamUrl (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  let url: URL | undefined
  try { url = new URL(value) } catch {}
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '' || url.username !== '') return undefined
  return url.origin + url.pathname.replace(/\/$/, '')
}

function whole (value: unknown, fallback: number, min: number, max: number, at: string, problems: string[]): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`${at} must be a whole number from ${min} to ${max}`)
    return fallback
  }
  return value
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
