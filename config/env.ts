// Reading one environment value at a time, the same way in every concept's config: a bad value
// (an empty one included) records one problem naming the variable with a valid example, and the
// default stands in so that every other problem is still found. Only proxy/config.ts hands the real process.env in.

export type Env = Readonly<Record<string, string | undefined>>

export interface WholeNumberRule {
  readonly fallback: number
  readonly min: number
  /** No upper bound when absent. */
  readonly max?: number
  /** Shown in the message; the fallback when absent. */
  readonly example?: number | string
}

/**
 * The trimmed value of `name`, or undefined when the variable is absent. A variable that is set
 * but empty (`LEGACY_URL=`, often a template that lost its value) is a problem, not "unset":
 * defaults stand in only for variables that are absent.
 */
export function readSet (env: Env, name: string, problems: string[]): string | undefined {
  const value = env[name]
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (trimmed === '') {
    problems.push(`${name} is set but empty: give it a value, or unset it to use the default, e.g. unset ${name}`)
    return undefined
  }
  return trimmed
}

export function readWholeNumber (env: Env, name: string, rule: WholeNumberRule, problems: string[]): number {
  const raw = readSet(env, name, problems)
  if (raw === undefined) return rule.fallback
  const value = Number(raw)
  const max = rule.max ?? Number.MAX_SAFE_INTEGER
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < rule.min || value > max) {
    const range = rule.max === undefined ? `an integer of at least ${rule.min}` : `a whole number from ${rule.min} to ${rule.max}`
    problems.push(`${name} must be ${range}, e.g. ${name}=${rule.example ?? rule.fallback}`)
    return rule.fallback
  }
  return value
}

export function readOneOf<T extends string> (env: Env, name: string, allowed: readonly T[], fallback: T, problems: string[]): T {
  const raw = readSet(env, name, problems)
  if (raw === undefined) return fallback
  if ((allowed as readonly string[]).includes(raw)) return raw as T
  problems.push(`${name} must be one of ${allowed.join(', ')}, e.g. ${name}=${fallback}`)
  return fallback
}
