// Settings of the safety nets (shadow, fallback, breaker), parsed from the environment that
// proxy/config.ts hands over. Every bad variable is reported with a valid example.
import { readSet, readWholeNumber, type Env } from '../config/env.ts'

export const SAFETY_DEFAULTS = Object.freeze({
  SHADOW_FLAG_SUFFIX: '-shadow',
  SHADOW_CONCURRENCY: 4,
  SHADOW_MAX_BODY_BYTES: 1_048_576,
  SHADOW_TIMEOUT_MS: 5_000,
  SHADOW_MISMATCHES_KEPT: 20,
  NEW_HANDLER_TIMEOUT_MS: 10_000,
  BREAKER_WINDOW_MS: 30_000,
  BREAKER_MIN_REQUESTS: 20,
  BREAKER_ERROR_RATE: 0.5,
  BREAKER_COOL_DOWN_MS: 30_000,
  BREAKER_MAX_SCHOOLS: 10_000
})

export interface ShadowConfig {
  /** A route is shadowed for a school when the flag `<route flag><suffix>` is on for it. */
  readonly flagSuffix: string
  /** Shadow runs at once; more are dropped (and counted), never queued. */
  readonly concurrency: number
  /** Legacy bodies larger than this are not compared (counted as dropped). */
  readonly maxBodyBytes: number
  readonly timeoutMs: number
  /** Mismatches kept per route, newest first, for the admin listing. */
  readonly mismatchesKept: number
}

export interface BreakerConfig {
  readonly windowMs: number
  /** Fewer requests than this in the window never trip the breaker. */
  readonly minRequests: number
  /** Share of failed requests (0..1] in the window that trips it. */
  readonly errorRate: number
  readonly coolDownMs: number
  /** Schools tracked per route; the least recently seen closed ones are forgotten first. */
  readonly maxSchools: number
}

export interface SafetyConfig {
  readonly shadow: ShadowConfig
  /** Deadline of a new handler on GET/HEAD/OPTIONS before the request falls back to legacy; 0 = none. */
  readonly newHandlerTimeoutMs: number
  readonly breaker: BreakerConfig
}


function integer (env: Env, name: keyof typeof SAFETY_DEFAULTS, min: number, max: number, problems: string[]): number {
  return readWholeNumber(env, name, { fallback: SAFETY_DEFAULTS[name] as number, min, max }, problems)
}

export function parseSafetyConfig (env: Env, problems: string[]): SafetyConfig {
  const suffix = readSet(env, 'SHADOW_FLAG_SUFFIX', problems)
  let flagSuffix: string = SAFETY_DEFAULTS.SHADOW_FLAG_SUFFIX
  if (suffix !== undefined) {
    // Unleash flag names are URL-friendly: the suffix must keep them so.
    if (/^[A-Za-z0-9_.-]+$/.test(suffix)) flagSuffix = suffix
    else problems.push('SHADOW_FLAG_SUFFIX must be letters, digits, "-", "_" or ".", e.g. SHADOW_FLAG_SUFFIX=-shadow')
  }
  const rawRate = readSet(env, 'BREAKER_ERROR_RATE', problems)
  let errorRate: number = SAFETY_DEFAULTS.BREAKER_ERROR_RATE
  if (rawRate !== undefined) {
    const rate = Number(rawRate)
    if (!/^\d*\.?\d+$/.test(rawRate) || !(rate > 0 && rate <= 1)) {
      problems.push('BREAKER_ERROR_RATE must be a share of failed requests above 0 and at most 1, e.g. BREAKER_ERROR_RATE=0.5')
    } else errorRate = rate
  }
  return Object.freeze({
    shadow: Object.freeze({
      flagSuffix,
      concurrency: integer(env, 'SHADOW_CONCURRENCY', 0, 1_000, problems),
      maxBodyBytes: integer(env, 'SHADOW_MAX_BODY_BYTES', 1, 104_857_600, problems),
      timeoutMs: integer(env, 'SHADOW_TIMEOUT_MS', 1, 600_000, problems),
      mismatchesKept: integer(env, 'SHADOW_MISMATCHES_KEPT', 1, 1_000, problems)
    }),
    newHandlerTimeoutMs: integer(env, 'NEW_HANDLER_TIMEOUT_MS', 0, 3_600_000, problems),
    breaker: Object.freeze({
      windowMs: integer(env, 'BREAKER_WINDOW_MS', 100, 3_600_000, problems),
      minRequests: integer(env, 'BREAKER_MIN_REQUESTS', 1, 1_000_000, problems),
      errorRate,
      coolDownMs: integer(env, 'BREAKER_COOL_DOWN_MS', 1, 3_600_000, problems),
      maxSchools: integer(env, 'BREAKER_MAX_SCHOOLS', 1, 1_000_000, problems)
    })
  })
}
