// Test kit for the safety nets and metrics: ficus built by its factory as main.ts builds it
// (metrics registry, safety net, admin listener with /metrics, /shadow, /breakers), in front of
// a recording legacy, with the JSON log lines captured.
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { Client } from 'undici'
import { Flags } from '../../flags/flags.ts'
import type { FicusMetrics } from '../../metrics/registry.ts'
import type { MigratedRoute } from '../../core/route.ts'
import { parseConfig, type Config } from '../../proxy/config.ts'
import { REDACTED_PATHS } from '../../proxy/logger.ts'
import type { SafetyNet } from '../../safety/safety-net.ts'
import type { Readiness } from '../../proxy/admin.ts'
import { createFicus } from '../../proxy/create-ficus.ts'
import { FileTenantRegistry } from '../../tenants/file-registry.ts'
import { DEFAULT_TENANTS, writeJson, type LogLine } from './proxy-kit.ts'
import { startRecordingLegacy, waitFor, DEFAULT_WAIT_MS, type RecordingLegacy, type TeardownHost } from './recording-legacy.ts'

export { waitFor, DEFAULT_WAIT_MS }

const CLIENT_TIMEOUT_MS = 10_000

export interface SafetyKitOptions {
  readonly routes: readonly MigratedRoute[]
  /** Unleash client-features content of the flags file. */
  readonly flags: unknown
  readonly env?: Readonly<Record<string, string>>
  readonly tenants?: unknown
  /** Mount the shared session store the config (REDIS_URL, SESSION_*) describes. */
  readonly withSessions?: boolean
}

export interface KitAnswer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Buffer
  readonly text: string
}

export interface SafetyKit {
  readonly app: FastifyInstance
  readonly config: Config
  readonly legacy: RecordingLegacy
  readonly safety: SafetyNet
  readonly metrics: FicusMetrics
  readonly readiness: Readiness
  readonly logs: readonly LogLine[]
  readonly origin: string
  readonly adminOrigin: string
  writeFlags (content: unknown): void
  /** A request on the public port with the Host of `school`. */
  request (school: string, path: string, options?: { method?: string, headers?: Record<string, string>, body?: string }): Promise<KitAnswer>
  /** GET on the admin listener. */
  admin (path: string): Promise<KitAnswer>
}

/** Unleash client features: each flag on for exactly the schools listed. */
export function flagsFor (flags: Readonly<Record<string, readonly string[]>>): object {
  return {
    version: 2,
    features: Object.entries(flags).map(([name, schools]) => ({
      name,
      enabled: true,
      strategies: [{
        name: 'flexibleRollout',
        parameters: { rollout: '100', stickiness: 'tenantId', groupId: name },
        constraints: [{ contextName: 'tenantId', operator: 'IN', values: [...schools] }]
      }]
    }))
  }
}

export async function startSafetyKit (t: TeardownHost, options: SafetyKitOptions): Promise<SafetyKit> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-safety-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const flagsFile = join(dir, 'flags.json')
  const tenantsFile = join(dir, 'tenants.json')
  writeJson(flagsFile, options.flags)
  writeJson(tenantsFile, options.tenants ?? DEFAULT_TENANTS)

  const legacy = await startRecordingLegacy(t)
  const config = parseConfig({ LEGACY_URL: legacy.url, TENANTS_FILE: tenantsFile, FLAGS_FILE: flagsFile, FLAGS_POLL_MS: '100', LOG_LEVEL: 'info', ...options.env })

  const logs: LogLine[] = []
  // The production redaction, so the tests see what the production log would hold.
  const logger = pino({ level: config.logLevel, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      callback()
    }
  }))

  const registry = new FileTenantRegistry({ path: tenantsFile, pollIntervalMs: config.flagsPollMs })
  await registry.start()
  t.teardown(() => registry.close())
  const flags = await Flags.fromFile(flagsFile, logger, config.flagsPollMs)
  t.teardown(() => flags.close())

  // Process metrics are global to prom-client's collectors; the tests need only ficus's own.
  const ficus = await createFicus(config, {
    logger,
    registry,
    flags,
    routes: options.routes,
    ...(options.withSessions === true ? {} : { sessions: false }),
    processMetrics: false,
    console: false
  })
  const { app, admin, safety, metrics, readiness } = ficus
  t.teardown(() => ficus.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  await admin.listen({ port: 0, host: '127.0.0.1' })
  const adminOrigin = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`

  const client = new Client(origin, { headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS })
  t.teardown(() => client.destroy())
  const adminClient = new Client(adminOrigin, { headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS })
  t.teardown(() => adminClient.destroy())

  const read = async (response: { statusCode: number, headers: Record<string, string | string[] | undefined>, body: { arrayBuffer (): Promise<ArrayBuffer> } }): Promise<KitAnswer> => {
    const body = Buffer.from(await response.body.arrayBuffer())
    return { status: response.statusCode, headers: response.headers, body, text: body.toString('utf8') }
  }

  return {
    app,
    config,
    legacy,
    safety,
    metrics,
    readiness,
    logs,
    origin,
    adminOrigin,
    writeFlags: (content) => writeJson(flagsFile, content),
    async request (school, path, requestOptions = {}) {
      const response = await client.request({
        method: (requestOptions.method ?? 'GET') as 'GET',
        path,
        headers: { host: `${school}.localhost`, ...requestOptions.headers },
        body: requestOptions.body
      })
      return await read(response as unknown as Parameters<typeof read>[0])
    },
    async admin (path) {
      const response = await adminClient.request({ method: 'GET', path })
      return await read(response as unknown as Parameters<typeof read>[0])
    }
  }
}
