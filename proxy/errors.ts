import { defineErrors, defineStartupErrors } from '../errors/index.ts'

// The admin listener's own refusal (the edge's are in request-path/errors.ts).
export const AdminErrors = defineErrors({
  FICUS_ERR_ADMIN_UNAUTHORIZED: { statusCode: 401, message: 'A valid admin bearer token is required' }
})

// Startup failures: one line on stderr naming the variable (or the file), exit code 1.
export const StartupErrors = defineStartupErrors({
  FICUS_ERR_CONFIG: { message: 'Invalid configuration' },
  FICUS_ERR_STARTUP: { message: 'ficus could not start' }
})
export type StartupCode = keyof typeof StartupErrors.table
