// Who may call a migrated route, as a route declares it (the `access` field of MigratedRoute) and
// as its handler sees the caller. The checks themselves live in access/rules.ts.

/** The user signed in on the legacy's session, as handlers see it on `request.user`. */
export interface SignedInUser {
  /** The legacy's user id, as its session holds it (Flask-Login: `_user_id`). */
  readonly id: string
  readonly roles: readonly string[]
  /** The school the session belongs to (always the request's). */
  readonly school: string
  /** False when the legacy restored the sign-in from a remember-me cookie (Flask-Login `_fresh`). */
  readonly fresh: boolean
}

/** A rule on the signed-in user: one of these roles, and/or a predicate. */
export interface UserRule {
  /** The user needs at least one of these roles. */
  readonly roles?: readonly string[]
  /** Decides on its own; `describe` says what it checks in /decisions. */
  readonly allow?: (user: SignedInUser) => boolean
  readonly describe?: string
}

/** A route that says nothing is for signed-in users only: anonymous access is always an explicit `'public'`. */
export type AccessRule = 'public' | 'signed-in' | UserRule | ((user: SignedInUser) => boolean)
