// Real PostgreSQL databases for the schools of a test file, migrated (once, on a template that
// CREATE DATABASE ... TEMPLATE copies) and seeded each with its own marker, and dropped at
// teardown. Every name starts with the file's own prefix, so test files running in parallel
// never touch each other's databases.
import { join } from 'node:path'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Client, escapeLiteral } from 'pg'
import { sendError, toFicusError } from '../../request-path/error-reply.ts'
import { mapLimit } from './recording-legacy.ts'
import type { MigratedRoute } from '../../core/route.ts'
import type { TenantRegistry } from '../../tenants/registry.ts'
import type { Tenant } from '../../tenants/tenant.ts'
import { DEFAULT_MIGRATIONS_DIR } from '../../tenant-db/config.ts'
import type { TenantDatabase } from '../../tenant-db/database.ts'
import { loadMigrations, migrateDatabase } from '../../tenant-db/migrate.ts'
import { openPgMigrationTarget } from '../../tenant-db/pg-transaction.ts'

export const PG_HOST_URL = 'postgres://postgres@127.0.0.1:5432'
export const ADMIN_URL = `${PG_HOST_URL}/test`
export const TENANT_MIGRATIONS_DIR = join(DEFAULT_MIGRATIONS_DIR, 'tenant')
export const CONTROL_MIGRATIONS_DIR = join(DEFAULT_MIGRATIONS_DIR, 'control')
const CONNECT_TIMEOUT_MS = 5_000
const SEED_CONCURRENCY = 4
/** Admin connections that create or drop databases together (the server allows 100 in all). */
const ADMIN_CONCURRENCY = 10
export const SEEDED_CLASS = '7B'
export const SEEDED_PUPILS = ['p1', 'p2', 'p3'] as const

export interface TeardownHost { teardown (fn: () => unknown): void }

/**
 * A test file's database prefix. `FICUS_TEST_DB_NS` (lower-case letters and digits) is added to
 * it, so two checkouts running the same test file against one PostgreSQL stay apart.
 */
export function testDatabasePrefix (name: string): string {
  const ns = process.env.FICUS_TEST_DB_NS ?? ''
  if (!/^[a-z0-9]*$/.test(ns)) throw new Error(`FICUS_TEST_DB_NS must be lower-case letters and digits, got ${JSON.stringify(ns)}`)
  return ns === '' ? name : `${name}${ns}`
}

export function databaseUrl (name: string): string {
  return `${PG_HOST_URL}/${name}`
}

export function schoolId (index: number): string {
  return `school-${String(index).padStart(3, '0')}`
}

/** The class name seeded in a school's database: it names the school, so an answer shows where it came from. */
export function classNameOf (id: string): string {
  return `${SEEDED_CLASS} of ${id}`
}

export interface SchoolDatabase {
  readonly id: string
  readonly database: string
  readonly url: string
}

export async function withAdmin<T> (work: (admin: Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const admin = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
  await admin.connect()
  try {
    return await work(admin)
  } finally {
    await admin.end()
  }
}

/**
 * Runs `work` on each item, each on a new admin connection, `ADMIN_CONCURRENCY` at a time. A DROP
 * DATABASE waits for a checkpoint, and the checkpointer serves every request waiting at once with
 * one checkpoint: 200 drops sent together cost a few checkpoints, one after another 200. (A
 * connection that has dropped a database is slow to drop the next: one connection per statement.)
 */
async function onAdminConnections<T> (items: readonly T[], work: (admin: Client, item: T) => Promise<unknown>): Promise<void> {
  await mapLimit(items, ADMIN_CONCURRENCY, async (item) => await withAdmin((admin) => work(admin, item)))
}

/** Drops every database whose name starts with `prefix_`, leftovers of an interrupted run included. */
export async function dropDatabases (prefix: string): Promise<void> {
  const { rows } = await withAdmin((admin) => admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'", [prefix]))
  await onAdminConnections(rows, (admin, { datname }) => admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`))
}

export interface CreateSchoolsOptions {
  /** Run the tenant migrations (on one template, copied) and seed each school (default true). */
  readonly migrated?: boolean
  /** First school index (default 1). */
  readonly from?: number
}

/**
 * Creates `count` school databases named `<prefix>_<n>` for schools `school-<n>`; dropped at
 * teardown (each DROP DATABASE costs a checkpoint: keep counts small but where a test needs many).
 */
export async function createSchoolDatabases (t: TeardownHost, prefix: string, count: number, options: CreateSchoolsOptions = {}): Promise<SchoolDatabase[]> {
  const migrated = options.migrated ?? true
  const from = options.from ?? 1
  await dropDatabases(prefix)
  t.teardown(() => dropDatabases(prefix))
  const schools = Array.from({ length: count }, (_, i): SchoolDatabase => {
    const n = from + i
    return { id: schoolId(n), database: `${prefix}_${n}`, url: databaseUrl(`${prefix}_${n}`) }
  })
  const template = `${prefix}_template`
  if (migrated) {
    await withAdmin((admin) => admin.query(`CREATE DATABASE "${template}"`))
    await withTarget(databaseUrl(template), async (target) => {
      await migrateDatabase(target, await loadMigrations(TENANT_MIGRATIONS_DIR))
    })
  }
  // FILE_COPY copies the template's files and waits for a checkpoint (shared by the creates sent
  // together); the default WAL_LOG writes every page through the WAL and leaves them dirty, for the
  // checkpoint of each later DROP DATABASE to write out again.
  await onAdminConnections(schools, (admin, school) =>
    admin.query(`CREATE DATABASE "${school.database}" TEMPLATE "${migrated ? template : 'template1'}" STRATEGY FILE_COPY`))
  if (migrated) await withAdmin((admin) => admin.query(`DROP DATABASE "${template}"`))
  if (migrated) await seedSchools(schools)
  return schools
}

/**
 * Writes each school's marker, its class 7B (named after the school, so an answer shows which
 * database it came from) and three pupils. The databases must be migrated.
 */
export async function seedSchools (schools: readonly SchoolDatabase[]): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, async () => {
    while (next < schools.length) {
      const school = schools[next++] as SchoolDatabase
      const pupils = SEEDED_PUPILS.map((pupil, i) => `(${escapeLiteral(pupil)}, ${escapeLiteral(SEEDED_CLASS)}, 'Pupil${i + 1}', 'Test')`).join(', ')
      // One round trip per school: generated names only, quoted all the same.
      await withAdmin((client) => client.query(`BEGIN;
        INSERT INTO school_marker (school_id) VALUES (${escapeLiteral(school.id)});
        INSERT INTO classes (id, name) VALUES (${escapeLiteral(SEEDED_CLASS)}, ${escapeLiteral(classNameOf(school.id))});
        INSERT INTO pupils (id, class_id, given_name, family_name) VALUES ${pupils};
        COMMIT`), school.url)
    }
  }))
}

async function withTarget<T> (url: string, work: (target: Awaited<ReturnType<typeof openPgMigrationTarget>>) => Promise<T>): Promise<T> {
  const target = await openPgMigrationTarget(url, { connectTimeoutMs: CONNECT_TIMEOUT_MS, applicationName: 'ficus-test', label: 'test' })
  try {
    return await work(target)
  } finally {
    await target.close()
  }
}

/** A control database `<prefix>ctl` (outside the `<prefix>_` schools) (with the control migrations applied unless told not to); dropped at teardown. */
export async function createControlDatabase (t: TeardownHost, prefix: string, options: { migrated?: boolean } = {}): Promise<string> {
  const name = `${prefix}ctl`
  await withAdmin(async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await admin.query(`CREATE DATABASE "${name}"`)
  })
  t.teardown(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)))
  if (options.migrated ?? true) {
    await withTarget(databaseUrl(name), async (target) => {
      await migrateDatabase(target, await loadMigrations(CONTROL_MIGRATIONS_DIR))
    })
  }
  return databaseUrl(name)
}

export interface TenantRowInput {
  readonly id: string
  readonly name?: string
  readonly databaseUrl?: string
  readonly databaseName?: string
  readonly status?: string
  readonly cohorts?: readonly string[]
}

export async function insertTenants (controlUrl: string, rows: readonly TenantRowInput[]): Promise<void> {
  await withAdmin(async (client) => {
    await client.query(`INSERT INTO tenants (id, name, database_url, database_name, status)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])`, [
      rows.map((row) => row.id),
      rows.map((row) => row.name ?? `School ${row.id}`),
      rows.map((row) => row.databaseUrl ?? null),
      rows.map((row) => row.databaseName ?? null),
      rows.map((row) => row.status ?? 'active')
    ])
    for (const row of rows) {
      if (row.cohorts !== undefined && row.cohorts.length > 0) await client.query('UPDATE tenants SET cohorts = $2 WHERE id = $1', [row.id, row.cohorts])
    }
  }, controlUrl)
}

async function countOn (client: Client, prefix: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE $1 || '\\_%'", [prefix])
  return rows[0]?.n ?? 0
}

/** Server connections open now to `prefix_*` databases. */
export function countConnections (prefix: string): Promise<number> {
  return withAdmin((client) => countOn(client, prefix))
}

/** Highest number of server connections to `prefix_*` databases seen while sampling. */
export class ConnectionSampler {
  readonly #prefix: string
  readonly #client: Client
  #max = 0
  #samples = 0
  #running: Promise<void> | undefined
  #stopped = false

  constructor (prefix: string) {
    this.#prefix = prefix
    this.#client = new Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
  }

  get max (): number { return this.#max }
  get samples (): number { return this.#samples }

  async start (intervalMs: number): Promise<void> {
    await this.#client.connect()
    this.#running = (async () => {
      while (!this.#stopped) {
        this.#max = Math.max(this.#max, await this.count())
        this.#samples++
        await new Promise((resolve) => setTimeout(resolve, intervalMs))
      }
    })()
  }

  async count (): Promise<number> {
    return countOn(this.#client, this.#prefix)
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    await this.#running
    await this.#client.end()
  }
}

/** A registry of fixed tenants whose snapshot a test can replace, as real registries do. */
export class ListRegistry implements TenantRegistry {
  readonly source = 'test list'
  #tenants: Map<string, Tenant>
  #version = 1

  constructor (tenants: readonly Tenant[]) {
    this.#tenants = ListRegistry.#snapshot(tenants)
  }

  static #snapshot (tenants: readonly Tenant[]): Map<string, Tenant> {
    return new Map(tenants.map((tenant) => [tenant.id, Object.freeze({ ...tenant, cohorts: Object.freeze([...tenant.cohorts]) })]))
  }

  get size (): number { return this.#tenants.size }
  get version (): number { return this.#version }
  async start (): Promise<void> {}
  get (id: string): Tenant | undefined { return this.#tenants.get(id) }
  all (): Iterable<Tenant> { return this.#tenants.values() }
  replace (tenants: readonly Tenant[]): void {
    this.#tenants = ListRegistry.#snapshot(tenants)
    this.#version++
  }
  async close (): Promise<void> {}
}

export function tenantsOf (schools: readonly SchoolDatabase[]): Tenant[] {
  return schools.map((school) => ({ id: school.id, name: `School ${school.id}`, status: 'active', cohorts: [], databaseUrl: school.url }))
}

export const SCHOOL_HEADER = 'x-test-school'
/** The signed-in teacher's id in a route app (default `test-teacher`); empty: nobody signed in. */
export const USER_HEADER = 'x-test-user'

/**
 * A fastify app that does what the edge does before a migrated handler runs: `request.tenant`
 * from the registry (here by a header instead of the Host), `request.user` (a teacher named by a
 * header, standing in for the access stage that test/access/ runs against a real legacy), the
 * edge's error replies, and the routes.
 */
export async function startRouteApp (t: TeardownHost, registry: TenantRegistry, routes: readonly MigratedRoute[]): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, requestIdHeader: 'x-request-id' })
  app.decorateRequest('tenant', undefined as unknown as Tenant)
  app.decorateRequest('user', null)
  app.addHook('onRequest', async (request) => {
    const id = request.headers[SCHOOL_HEADER]
    const tenant = typeof id === 'string' ? registry.get(id) : undefined
    if (tenant === undefined) throw new Error(`test app: unknown school ${String(id)}`)
    request.tenant = tenant
    const user = request.headers[USER_HEADER]
    request.user = user === '' ? null : Object.freeze({ id: typeof user === 'string' ? user : 'test-teacher', roles: ['teacher'], school: tenant.id, fresh: true })
  })
  app.setErrorHandler((error, request, reply) => sendError(request, reply, toFicusError(error as Error)))
  for (const route of routes) app.route({ method: route.method as never, url: route.url, schema: route.schema, handler: route.handler as never })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export type { TenantDatabase }
