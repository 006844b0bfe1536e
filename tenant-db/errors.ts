import { defineErrors } from '../errors/index.ts'

// Every failure of a school's database that a handler can meet is a 503 for that school only:
// the request could succeed later, and other schools are not involved.
export const TenantDbErrors = defineErrors({
  FICUS_ERR_TENANT_DB_UNAVAILABLE: { statusCode: 503, message: 'The school\'s database cannot be reached' },
  FICUS_ERR_TENANT_DB_TIMEOUT: { statusCode: 503, message: 'The school\'s database did not answer in time' },
  FICUS_ERR_TENANT_DB_BUSY: { statusCode: 503, message: 'All database pools are busy, please try again' },
  FICUS_ERR_TENANT_DB_CLOSED: { statusCode: 503, message: 'The school databases are shutting down' },
  FICUS_ERR_TENANT_DB_UNCONFIGURED: { statusCode: 500, message: 'The school has no database configured' },
  FICUS_ERR_TENANT_DB_TX_FINISHED: { statusCode: 500, message: 'A query was sent on a transaction that has already ended' },
  FICUS_ERR_MIGRATION_CHANGED: { statusCode: 500, message: 'An applied migration was edited afterwards' },
  FICUS_ERR_MIGRATION_FAILED: { statusCode: 500, message: 'A migration failed' }
})
