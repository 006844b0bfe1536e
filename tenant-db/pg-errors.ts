// Maps what the pg driver throws to the errors a handler's caller understands. SQL errors
// (constraint violations, syntax) are the handler's own and pass through untouched.
import { DatabaseError } from 'pg'
import { FicusError } from '../errors/index.ts'
import { TenantDbErrors } from './errors.ts'

const QUERY_CANCELED = '57014'
const LOCK_NOT_AVAILABLE = '55P03'
// Server going away, refusing connections, or a database or login that does not exist (yet).
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300', '3D000', '28000', '28P01'])
// pg's own wording when its client-side read timer fires.
const CLIENT_READ_TIMEOUT = 'Query read timeout'

export function toTenantDbError (error: unknown, tenantId: string): unknown {
  if (error instanceof FicusError) return error
  if (error instanceof DatabaseError) {
    const state = error.code ?? ''
    if (state === QUERY_CANCELED || state === LOCK_NOT_AVAILABLE) return TenantDbErrors.FICUS_ERR_TENANT_DB_TIMEOUT(tenantId, { cause: error })
    if (state.startsWith('08') || UNAVAILABLE_STATES.has(state)) return TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(tenantId, { cause: error })
    return error
  }
  if (error instanceof Error && error.message === CLIENT_READ_TIMEOUT) return TenantDbErrors.FICUS_ERR_TENANT_DB_TIMEOUT(tenantId, { cause: error })
  return TenantDbErrors.FICUS_ERR_TENANT_DB_UNAVAILABLE(tenantId, { cause: error })
}

/** Whether the connection that raised `error` can still be used (after a ROLLBACK). */
export function leavesConnectionUsable (error: unknown): boolean {
  return error instanceof DatabaseError && !(error.code ?? '').startsWith('08') && !UNAVAILABLE_STATES.has(error.code ?? '')
}
