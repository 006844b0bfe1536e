// Who am I, from the session shared with legacy: proof for operators (and users) that a sign-in
// on a legacy page carries over to migrated pages, and that what a migrated page writes carries back.
// Both routes are for any signed-in user (the default rule); the edge has checked it already.
import { signedInUser } from '../../access/index.ts'
import type { SessionDict } from '../../sessions/values.ts'
import { migratedRoute } from '../../core/route.ts'

const PREFERENCES_KEY = 'preferences'

export const me = migratedRoute({
  name: 'me.show',
  method: 'GET',
  url: '/me',
  flag: 'me',
  access: 'signed-in',
  handler: async (request) => {
    const user = signedInUser(request)
    const session = await request.session.load()
    return { user: user.id, roles: user.roles, school: user.school, preferences: session?.get(PREFERENCES_KEY) ?? {} }
  }
})

export const updatePreferences = migratedRoute<{ Body: SessionDict }>({
  name: 'me.preferences',
  method: 'PUT',
  url: '/me/preferences',
  flag: 'me',
  access: 'signed-in',
  // Values are stored as they came (no coercion, see proxy/server.ts): legacy reads a JSON 3 as int 3.
  schema: {
    body: { type: 'object', maxProperties: 50, additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }] } }
  },
  handler: async (request) => {
    const user = signedInUser(request)
    const session = await request.session.load()
    // The edge found the user in this very session, read once per request.
    if (session === null) throw new Error('the session of a signed-in user is gone')
    // Merged with the preferences as the store holds them when the write is made: another tab
    // (or legacy) changing other preferences meanwhile keeps its change.
    const preferences = await session.update((draft) => {
      const current = draft.get(PREFERENCES_KEY)
      const merged: SessionDict = { ...(isDict(current) ? current : {}), ...request.body }
      draft.set(PREFERENCES_KEY, merged)
      return merged
    })
    return { user: user.id, school: user.school, preferences }
  }
})

function isDict (value: unknown): value is SessionDict {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
