// The base error of ficus: every failure that reaches a client or an operator carries a stable
// code (documented in the README), the HTTP status it maps to, and the cause that produced it.

export interface ErrorSpec {
  readonly statusCode: number
  readonly message: string
}

export interface FicusErrorOptions {
  readonly cause?: unknown
  /**
   * The status of this one answer, where a surface gives the same failure another status than the
   * table's (the admin API answers a missing query parameter with FICUS_ERR_VALIDATION and 400,
   * an unknown console page with 404). The code, the one operators grep for, never changes.
   */
  readonly statusCode?: number
}

export class FicusError extends Error {
  readonly code: string
  readonly statusCode: number

  constructor (code: string, spec: ErrorSpec, detail?: string, options?: FicusErrorOptions) {
    super(detail === undefined ? spec.message : `${spec.message}: ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'FicusError'
    this.code = code
    this.statusCode = options?.statusCode ?? spec.statusCode
  }
}

/**
 * Turns a table of `{ CODE: { statusCode, message } }` into typed constructors, so that each
 * concept keeps its errors in one file (as fastify's lib/errors.js does) and every code stays
 * unique across the project (checked by test/errors/codes.test.ts).
 */
export function defineErrors<const T extends Record<string, ErrorSpec>> (table: T) {
  const makers = {} as { [K in keyof T]: (detail?: string, options?: FicusErrorOptions) => FicusError }
  for (const code of Object.keys(table) as Array<keyof T & string>) {
    const spec = table[code] as ErrorSpec
    makers[code] = (detail, options) => new FicusError(code, spec, detail, options)
  }
  return Object.freeze({ table: Object.freeze(table), ...makers })
}

/** A failure that stops startup instead of answering a request: no HTTP status, main exits 1. */
export interface StartupErrorSpec {
  readonly message: string
}

/**
 * The codes of startup failures (bad configuration, a port taken), in a table like the others so
 * that they are unique and documented with the rest; their errors are thrown by the modules that
 * find them (proxy/config.ts, proxy/startup-error.ts).
 */
export function defineStartupErrors<const T extends Record<string, StartupErrorSpec>> (table: T): { readonly table: Readonly<T> } {
  return Object.freeze({ table: Object.freeze(table) })
}
