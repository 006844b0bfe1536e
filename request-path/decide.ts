// Stage 4, decide: the route's flag for this school, synchronously and from memory, before the
// body is read. Off (or a kill switch on): legacy, and when the route's shadow flag is on for the
// school on a GET or HEAD, the new handler is to be compared with legacy's answer in the
// background, if there is room. On: new. Flags not loaded yet refuse (503) rather than guess.
import { decideBackend } from '../flags/decide-backend.ts'
import type { FlagContext } from '../flags/flag-context.ts'
import type { FlagReader } from '../flags/flags.ts'
import { toFicusError } from './error-reply.ts'
import type { SafetyNet } from '../safety/safety-net.ts'
import type { Exchange } from './exchange.ts'
import type { RequestOutcome, Stage } from './stage.ts'

export class DecideStage implements Stage {
  readonly name = 'decide'
  readonly #flags: FlagReader
  readonly #killSwitch: string | undefined
  readonly #safety: SafetyNet

  constructor (flags: FlagReader, killSwitch: string | undefined, safety: SafetyNet) {
    this.#flags = flags
    this.#killSwitch = killSwitch
    this.#safety = safety
  }

  onRequest (exchange: Exchange): RequestOutcome {
    const guard = exchange.guard
    const tenant = exchange.tenant
    if (exchange.reason !== 'undecided' || guard === null || tenant === undefined) return undefined
    const request = exchange.request
    const context: FlagContext = { tenantId: tenant.id, cohorts: tenant.cohorts, route: guard.name, remoteAddress: request.ip }
    try {
      if (decideBackend(this.#flags, guard.route, context, this.#killSwitch) === 'new') {
        exchange.backend = 'new'
        exchange.reason = 'flag-on'
        return undefined
      }
      exchange.backend = 'legacy'
      exchange.reason = 'flag-off'
      const method = request.method
      if (method !== 'GET' && method !== 'HEAD') return undefined
      if (decideBackend(this.#flags, guard.shadowRoute, context, this.#killSwitch) !== 'new') return undefined
      exchange.shadowing = this.#safety.roomForShadow(guard)
    } catch (error) {
      return toFicusError(error as Error)
    }
    return undefined
  }
}
