// Codes that more than one surface answers with: the edge and the legacy adapter both refuse an
// upgrade nobody accepts, and the edge, the admin API and the console all answer a request they
// cannot understand, or their own bug. One table in the core, so that none of them imports another.
import { defineErrors } from '../errors/index.ts'

export const CommonErrors = defineErrors({
  FICUS_ERR_UPGRADE_UNSUPPORTED: { statusCode: 501, message: 'Protocol upgrades (such as WebSocket) are not served' },
  FICUS_ERR_VALIDATION: { statusCode: 422, message: 'Invalid request' },
  FICUS_ERR_INTERNAL: { statusCode: 500, message: 'Internal error' }
})
