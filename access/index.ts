// What migrated routes use of access: the signed-in user of a route that is not public (the rule
// types themselves are part of the route contract, core/access-rule.ts).
import type { FastifyRequest } from 'fastify'
import { AccessErrors } from './errors.ts'
import type { SignedInUser } from '../core/access-rule.ts'

/**
 * `request.user` on a route that is not public, where the edge has already refused anyone not
 * signed in: narrows the type, and refuses (401) should the route be mounted without the stage.
 */
export function signedInUser (request: FastifyRequest): SignedInUser {
  const user = (request as { user?: SignedInUser | null }).user
  if (user === undefined || user === null) throw AccessErrors.FICUS_ERR_NOT_SIGNED_IN()
  return user
}
