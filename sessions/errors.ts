import { defineErrors } from '../errors/index.ts'

export const SessionErrors = defineErrors({
  FICUS_ERR_SESSION_STORE_UNAVAILABLE: { statusCode: 503, message: 'The session store is unavailable' },
  FICUS_ERR_SESSION_ENDED: { statusCode: 401, message: 'The session ended before the change could be saved; sign in again' },
  FICUS_ERR_SESSION_CONFLICT: { statusCode: 503, message: 'The session kept changing while it was being saved' },
  FICUS_ERR_SESSION_UNREADABLE: { statusCode: 500, message: 'The session record is not in the configured format' },
  FICUS_ERR_SESSION_VALUE_UNSUPPORTED: { statusCode: 500, message: 'The session value cannot be written in the configured format' },
  FICUS_ERR_SESSION_TENANT_KEY_READONLY: { statusCode: 500, message: 'Handlers may not change the school a session belongs to' }
})
