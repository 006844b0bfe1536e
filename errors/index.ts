// The base error of ficus: every failure that reaches a client or an operator carries a stable
// code (documented in the README), the HTTP status it maps to, and the cause that produced it.

export interface ErrorSpec {
  readonly statusCode: number
  readonly message: string
}

export class FicusError extends Error {
  readonly code: string
  readonly statusCode: number

  constructor (code: string, spec: ErrorSpec, detail?: string, options?: { cause?: unknown }) {
    super(detail === undefined ? spec.message : `${spec.message}: ${detail}`, options)
    this.name = 'FicusError'
    this.code = code
    this.statusCode = spec.statusCode
  }
}

/**
 * Turns a table of `{ CODE: { statusCode, message } }` into typed constructors, so that each
 * concept keeps its errors in one file (as fastify's lib/errors.js does) and every code stays
 * unique across the project (checked by test/errors/codes.test.ts).
 */
export function defineErrors<const T extends Record<string, ErrorSpec>> (table: T) {
  const makers = {} as { [K in keyof T]: (detail?: string, options?: { cause?: unknown }) => FicusError }
  for (const code of Object.keys(table) as Array<keyof T & string>) {
    const spec = table[code] as ErrorSpec
    makers[code] = (detail, options) => new FicusError(code, spec, detail, options)
  }
  return Object.freeze({ table: Object.freeze(table), ...makers })
}
