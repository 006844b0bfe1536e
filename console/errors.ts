import { defineErrors } from '../errors/index.ts'

export const ConsoleErrors = defineErrors({
  FICUS_ERR_CONSOLE_SIGN_IN: { statusCode: 401, message: 'Sign in to the console first' },
  FICUS_ERR_CONSOLE_CSRF: { statusCode: 403, message: 'The form is out of date or did not come from the console; reload the page and try again' },
  FICUS_ERR_CONSOLE_FROZEN: { statusCode: 409, message: 'A freeze window is on: a move towards new needs an override with a reason' },
  FICUS_ERR_CONSOLE_STALE: { statusCode: 409, message: 'The flag changed since the preview; look at the new preview before saving' },
  FICUS_ERR_CONSOLE_BAD_MOVE: { statusCode: 422, message: 'The move is not valid' },
  FICUS_ERR_CONSOLE_FLAG_STORE: { statusCode: 502, message: 'The flag store did not take the change' }
})
