// Who may call a migrated route, declared next to its handler. A route that says nothing is for
// signed-in users only: anonymous access is always an explicit `'public'`. The rule's types are
// part of the route contract (core/access-rule.ts); the checks are here.
import type { AccessRule, SignedInUser, UserRule } from '../core/access-rule.ts'

export const DEFAULT_ACCESS: AccessRule = 'signed-in'

/** The rule in force: the route's own, or the default. */
export function effectiveAccess (route: { readonly access?: AccessRule }): AccessRule {
  return route.access ?? DEFAULT_ACCESS
}

/** Whether the rule lets this user (null: nobody signed in) in. */
export function permits (rule: AccessRule, user: SignedInUser | null): boolean {
  if (rule === 'public') return true
  if (user === null) return false
  if (rule === 'signed-in') return true
  if (typeof rule === 'function') return rule(user) === true
  if (rule.roles !== undefined && !rule.roles.some((role) => user.roles.includes(role))) return false
  if (rule.allow !== undefined && rule.allow(user) !== true) return false
  return true
}

/** A rule as /decisions shows it, e.g. `roles: teacher, office`. */
export function describeAccess (rule: AccessRule): string {
  if (rule === 'public' || rule === 'signed-in') return rule
  if (typeof rule === 'function') return `signed-in, checked by ${rule.name === '' ? 'a predicate' : rule.name}`
  const parts: string[] = []
  if (rule.roles !== undefined) parts.push(`roles: ${rule.roles.join(', ')}`)
  if (rule.allow !== undefined) parts.push(rule.describe ?? `checked by ${rule.allow.name === '' ? 'a predicate' : rule.allow.name}`)
  return parts.length === 0 ? 'signed-in' : parts.join('; ')
}

/** Problems of a declared rule, for startup: a rule that could never be decided is a bug. */
export function ruleProblem (rule: unknown): string | undefined {
  if (rule === undefined || rule === 'public' || rule === 'signed-in' || typeof rule === 'function') return undefined
  if (typeof rule !== 'object' || rule === null) return `access must be 'public', 'signed-in', { roles } or a predicate, not ${JSON.stringify(rule)}`
  const { roles, allow } = rule as UserRule
  if (roles === undefined && allow === undefined) return 'access { } names neither roles nor a predicate'
  if (roles !== undefined && (!Array.isArray(roles) || roles.length === 0 || roles.some((role) => typeof role !== 'string' || role === ''))) return 'access roles must be a non-empty list of role names'
  if (allow !== undefined && typeof allow !== 'function') return 'access allow must be a function of the user'
  return undefined
}
