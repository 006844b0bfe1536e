// The routing decision of a migrated route, kept pure so it can be tested without a server.
import type { FlagContext } from './flag-context.ts'
import type { FlagReader } from './flags.ts'

export type Backend = 'new' | 'legacy'

export function decideBackend (flags: FlagReader, flag: string, context: FlagContext): Backend {
  return flags.isEnabled(flag, context) ? 'new' : 'legacy'
}
