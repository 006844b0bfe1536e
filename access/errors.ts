import { defineErrors } from '../errors/index.ts'

export const AccessErrors = defineErrors({
  FICUS_ERR_NOT_SIGNED_IN: { statusCode: 401, message: 'No one is signed in to this school' },
  FICUS_ERR_FORBIDDEN: { statusCode: 403, message: 'The signed-in user may not do this' },
  FICUS_ERR_CSRF: { statusCode: 403, message: 'The request did not come from a page of this school' }
})
