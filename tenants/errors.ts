import { defineErrors } from '../errors/index.ts'

export const TenantErrors = defineErrors({
  FICUS_ERR_HOST_INVALID: { statusCode: 400, message: 'Bad Host header' },
  FICUS_ERR_TENANT_UNKNOWN: { statusCode: 404, message: 'No school is known at this address' },
  FICUS_ERR_TENANT_MAINTENANCE: { statusCode: 503, message: 'This school is down for maintenance, please try again later' },
  FICUS_ERR_TENANT_SUSPENDED: { statusCode: 403, message: 'This school\'s access is suspended' },
  FICUS_ERR_PG_REGISTRY_UNAVAILABLE: { statusCode: 503, message: 'The tenant registry database cannot be read' }
})
