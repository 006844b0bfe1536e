// The signed-in user, read from the legacy's own session record: which keys hold the user id,
// the roles and the freshness of the sign-in is configuration (Flask-Login: `_user_id`, `_fresh`).
// The session is already the request's school's or none (the binding rule of sessions/).
import type { Session } from '../sessions/session.ts'
import type { SessionValue } from '../sessions/values.ts'
import type { SignedInUser } from '../core/access-rule.ts'

export interface SessionUserKeys {
  /** The key holding the user id, e.g. `_user_id` (Flask-Login) or `user`. */
  readonly userKey: string
  /** The key holding the user's roles: a list (or set, tuple) of names, or one name. */
  readonly rolesKey: string
  /** The key holding whether the sign-in is fresh; undefined: every sign-in counts as fresh. */
  readonly freshKey: string | undefined
}

const MAX_ID_LENGTH = 256

/** The user of this session, or null when it holds no usable user id. */
export function userFromSession (session: Session | null, keys: SessionUserKeys): SignedInUser | null {
  if (session === null) return null
  const id = idOf(session.get(keys.userKey))
  if (id === undefined) return null
  const fresh = keys.freshKey === undefined ? true : session.get(keys.freshKey) === true
  return Object.freeze({ id, roles: Object.freeze(rolesOf(session.get(keys.rolesKey))), school: session.tenantId, fresh })
}

function idOf (value: SessionValue | undefined): string | undefined {
  let id: string | undefined
  if (typeof value === 'string') id = value
  else if (typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value))) id = String(value)
  return id === undefined || id === '' || id.length > MAX_ID_LENGTH ? undefined : id
}

function rolesOf (value: SessionValue | undefined): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value]
  if (Array.isArray(value) || value instanceof Set) return [...(value as Iterable<SessionValue>)].filter((role): role is string => typeof role === 'string' && role !== '')
  return []
}
