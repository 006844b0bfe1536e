// Who am I, from the session shared with legacy: proof for operators (and users) that a sign-in
// on a legacy page carries over to migrated pages, and that what a migrated page writes carries back.
import type { SessionDict } from '../../sessions/values.ts'
import { migratedRoute } from '../route.ts'

/** The session key legacy keeps the signed-in user under. */
export const USER_KEY = 'user'
const PREFERENCES_KEY = 'preferences'

export const me = migratedRoute({
  name: 'me.show',
  method: 'GET',
  url: '/me',
  flag: 'me',
  handler: async (request, reply) => {
    const session = await request.session.load()
    const user = session?.getString(USER_KEY)
    if (session === null || user === undefined) {
      return reply.code(401).send({ error: { code: 'FICUS_ERR_NOT_SIGNED_IN', message: 'No one is signed in to this school', requestId: request.id } })
    }
    return { user, school: session.tenantId, preferences: session.get(PREFERENCES_KEY) ?? {} }
  }
})

export const updatePreferences = migratedRoute<{ Body: SessionDict }>({
  name: 'me.preferences',
  method: 'PUT',
  url: '/me/preferences',
  flag: 'me',
  // Values are stored as they came (no coercion, see proxy/server.ts): legacy reads a JSON 3 as int 3.
  schema: {
    body: { type: 'object', maxProperties: 50, additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }] } }
  },
  handler: async (request, reply) => {
    const session = await request.session.load()
    if (session === null || session.getString(USER_KEY) === undefined) {
      return reply.code(401).send({ error: { code: 'FICUS_ERR_NOT_SIGNED_IN', message: 'No one is signed in to this school', requestId: request.id } })
    }
    // Merged with the preferences as the store holds them when the write is made: another tab
    // (or legacy) changing other preferences meanwhile keeps its change.
    const preferences = await session.update((draft) => {
      const current = draft.get(PREFERENCES_KEY)
      const merged: SessionDict = { ...(isDict(current) ? current : {}), ...request.body }
      draft.set(PREFERENCES_KEY, merged)
      return merged
    })
    return { user: session.getString(USER_KEY), school: session.tenantId, preferences }
  }
})

function isDict (value: unknown): value is SessionDict {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
