// Gives every handler `request.session` (loaded only when the handler asks), saves what the
// handler changed before the response leaves, exposes `fastify.sessionBindings` for the legacy
// adapter, and closes the store with the server.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { SessionBindings } from './bindings.ts'
import type { SessionCodec } from './codecs.ts'
import { DEFAULT_WRITE_RETRIES, RequestSession } from './session.ts'
import type { SessionRuntime } from './session.ts'
import type { SessionIdSigner } from './signer.ts'
import type { SessionStore } from './store.ts'

export const DEFAULT_COOKIE_NAME = 'session'
export const DEFAULT_TENANT_KEY = 'tenant'

declare module 'fastify' {
  interface FastifyRequest {
    /** The shared session; call `await request.session.load()` to read it. */
    readonly session: RequestSession
  }
  interface FastifyInstance {
    /** For legacy-bound requests: whether (and how) to strip a session cookie of another school. */
    readonly sessionBindings: SessionBindings
  }
}

export interface SessionsPluginOptions {
  readonly store: SessionStore
  readonly codec: SessionCodec
  /** Set when the legacy signs its ids (Flask-Session's SESSION_USE_SIGNER). */
  readonly signer?: SessionIdSigner
  readonly cookieName?: string
  readonly tenantKey?: string
  readonly writeRetries?: number
  /** Shared with whoever else needs bindings; built here (with `bindingCacheSize`) when absent. */
  readonly bindings?: SessionBindings
  readonly bindingCacheSize?: number
  /** Close the store when the server closes (default true). */
  readonly closeStore?: boolean
  /** The request's school; by default `request.tenant.id`, which the edge sets before any handler. */
  readonly tenantOf?: (request: FastifyRequest) => string | undefined
}

const kSession = Symbol('ficus.session')

interface SessionSlot {
  [kSession]: RequestSession | null
}

function defaultTenantOf (request: FastifyRequest): string | undefined {
  return (request as FastifyRequest & { tenant?: { id: string } }).tenant?.id
}

async function sessionsPlugin (fastify: FastifyInstance, options: SessionsPluginOptions): Promise<void> {
  const cookieName = options.cookieName ?? DEFAULT_COOKIE_NAME
  const tenantKey = options.tenantKey ?? DEFAULT_TENANT_KEY
  const tenantOf = options.tenantOf ?? defaultTenantOf
  const bindings = options.bindings ?? new SessionBindings({
    store: options.store,
    codec: options.codec,
    signer: options.signer,
    cookieName,
    tenantKey,
    ...(options.bindingCacheSize === undefined ? {} : { cacheSize: options.bindingCacheSize }),
    log: fastify.log
  })
  const runtime: SessionRuntime = Object.freeze({
    store: options.store,
    codec: options.codec,
    signer: options.signer,
    cookieName,
    tenantKey,
    writeRetries: options.writeRetries ?? DEFAULT_WRITE_RETRIES,
    onBinding: (id: string, tenantId: string) => bindings.remember(id, tenantId)
  })

  fastify.log.info(`sessions: ${options.store.description}, codec ${options.codec.name}, ` +
    `${options.signer === undefined ? 'unsigned' : options.signer.name + '-signed'} ids in cookie ${cookieName}`)

  fastify.decorate('sessionBindings', bindings)
  fastify.decorateRequest(kSession, null)
  fastify.decorateRequest('session', {
    getter (this: FastifyRequest): RequestSession {
      const slot = this as unknown as SessionSlot
      slot[kSession] ??= new RequestSession(runtime, this.headers.cookie, tenantOf(this))
      return slot[kSession]
    }
  })

  // Saved before the response is sent, so the next page the user opens (legacy or new) sees it.
  fastify.addHook('onSend', (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => {
    const session = (request as unknown as SessionSlot)[kSession]
    if (session === null || !session.requested) {
      done(null, payload)
      return
    }
    session.flush().then(() => done(null, payload), done)
  })

  if (options.closeStore !== false) {
    fastify.addHook('onClose', async () => {
      await options.store.close()
    })
  }
}

export default fp(sessionsPlugin, { fastify: '5.x', name: 'ficus-sessions' })
export { sessionsPlugin }
