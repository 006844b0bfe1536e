import { defineErrors } from '../errors/index.ts'

export const LegacyErrors = defineErrors({
  FICUS_ERR_LEGACY_UNAVAILABLE: { statusCode: 502, message: 'The legacy application could not be reached' },
  FICUS_ERR_LEGACY_TIMEOUT: { statusCode: 504, message: 'The legacy application did not answer in time' },
  FICUS_ERR_LEGACY_BAD_RESPONSE: { statusCode: 502, message: 'The legacy application sent an invalid response' },
  FICUS_ERR_LEGACY_SHARD_UNKNOWN: { statusCode: 502, message: 'The school\'s legacy shard is not in the legacy routing table' },
  FICUS_ERR_TUNNEL_LIMIT: { statusCode: 503, message: 'Too many upgraded connections are open; try again shortly' },
  FICUS_ERR_BODY_TOO_LARGE: { statusCode: 413, message: 'The request body is too large' }
})
