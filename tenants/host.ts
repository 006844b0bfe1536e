// Which school a request is for, from its Host header: `school-a.example.org` -> `school-a`.
// Pure and allocation-light: it runs first on every request.
import { TENANT_ID_PATTERN } from './tenant.ts'

export type HostResolution =
  | { readonly kind: 'tenant', readonly tenantId: string }
  | { readonly kind: 'bare' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'malformed', readonly reason: string }

const BARE: HostResolution = Object.freeze({ kind: 'bare' })
const UNKNOWN: HostResolution = Object.freeze({ kind: 'unknown' })
const MISSING: HostResolution = Object.freeze({ kind: 'malformed', reason: 'the Host header is missing' })
const MULTIPLE: HostResolution = Object.freeze({ kind: 'malformed', reason: 'more than one Host header' })
const BAD_SYNTAX: HostResolution = Object.freeze({ kind: 'malformed', reason: 'the Host header is not a valid host name' })

// host = labels of letters, digits and hyphens separated by dots, optional trailing dot, optional port
const HOST_SYNTAX = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?(?::[0-9]{1,5})?$/i

export class HostResolver {
  readonly #suffix: string
  readonly #baseDomain: string
  // Nearly every request repeats one of a few thousand Host values: remember the answer for each.
  readonly #cache = new Map<string, HostResolution>()
  readonly #cacheLimit: number

  constructor (baseDomain: string, cacheLimit = 10_000) {
    this.#baseDomain = baseDomain.toLowerCase()
    this.#suffix = '.' + this.#baseDomain
    this.#cacheLimit = cacheLimit
  }

  /**
   * `host` is the request's Host header as Node parsed it; with duplicate headers joined
   * (`joinDuplicateHeaders`) a repeated Host shows up as a comma-separated value.
   */
  resolve (host: string | undefined): HostResolution {
    if (host === undefined || host === '') return MISSING
    const cached = this.#cache.get(host)
    if (cached !== undefined) return cached
    const resolution = this.#resolveUncached(host)
    if (this.#cache.size >= this.#cacheLimit) this.#cache.clear()
    this.#cache.set(host, resolution)
    return resolution
  }

  #resolveUncached (host: string): HostResolution {
    if (host.includes(',')) return MULTIPLE
    if (!HOST_SYNTAX.test(host)) return BAD_SYNTAX
    let name = host.toLowerCase()
    const colon = name.indexOf(':')
    if (colon !== -1) {
      const port = Number(name.slice(colon + 1))
      if (port < 1 || port > 65535) return BAD_SYNTAX
      name = name.slice(0, colon)
    }
    if (name.endsWith('.')) name = name.slice(0, -1)
    if (name === this.#baseDomain) return BARE
    if (!name.endsWith(this.#suffix)) return UNKNOWN
    const label = name.slice(0, -this.#suffix.length)
    if (!TENANT_ID_PATTERN.test(label)) return UNKNOWN
    return Object.freeze({ kind: 'tenant', tenantId: label })
  }
}
