// Scenario (d)'s PostgreSQL: a control database whose `tenants` table registers every bench school,
// and real school databases (migrated once on a template, copied, seeded). Creating and dropping
// a database costs ~75 + ~115 ms and ~7.5 MB of disk here, so by default fewer databases than
// schools are made and the schools spread over them; each school still gets its own pool in
// ficus (pools are keyed by school, not by database). Every name starts with DB_PREFIX: what an
// interrupted run left behind is dropped at the next start.
import { Client, escapeLiteral } from 'pg'
import { join } from 'node:path'
import { DEFAULT_MIGRATIONS_DIR } from '../../tenant-db/config.ts'
import { loadMigrations, migrateDatabase } from '../../tenant-db/migrate.ts'
import { openPgMigrationTarget } from '../../tenant-db/pg-transaction.ts'
import { schoolId } from './fixtures.ts'

export const PG_SERVER_URL = 'postgres://postgres@127.0.0.1:5432'
const ADMIN_DATABASE = 'test'
export const DB_PREFIX = 'ficus_bench'
const CONTROL_DATABASE = `${DB_PREFIX}_control`
const TEMPLATE_DATABASE = `${DB_PREFIX}_template`
const CONNECT_TIMEOUT_MS = 5_000
const SEED_CONCURRENCY = 4
export const BENCH_CLASS = '7B'
const BENCH_PUPILS = 25

export interface SchoolDatabases {
  readonly controlUrl: string
  /** TENANT_DATABASE_URL_TEMPLATE straight to PostgreSQL (the rows give only database_name). */
  readonly directTemplate: string
  readonly databases: number
  readonly schools: number
  readonly setupMs: number
}

function url (database: string): string {
  return `${PG_SERVER_URL}/${database}`
}

async function withClient<T> (database: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url(database), connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'ficus-bench' })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

/** Drops every database of the bench, leftovers of an interrupted run included. */
export async function dropBenchDatabases (): Promise<number> {
  return withClient(ADMIN_DATABASE, async (admin) => {
    const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'", [DB_PREFIX])
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`)
    return rows.length
  })
}

export function schoolDatabaseName (index: number): string {
  return `${DB_PREFIX}_s${index}`
}

/**
 * `databases` school databases, migrated and seeded (class 7B with 25 pupils, its marker naming
 * the database), and a control database registering `schools` schools, school i on database
 * i mod `databases`.
 */
export async function createSchoolDatabases (schools: number, databases: number, cohortsOf: (index: number) => string[]): Promise<SchoolDatabases> {
  const started = Date.now()
  await dropBenchDatabases()
  await withClient(ADMIN_DATABASE, async (admin) => {
    await admin.query(`CREATE DATABASE "${TEMPLATE_DATABASE}"`)
    await admin.query(`CREATE DATABASE "${CONTROL_DATABASE}"`)
  })
  const migrate = async (database: string, dir: string): Promise<void> => {
    const target = await openPgMigrationTarget(url(database), { connectTimeoutMs: CONNECT_TIMEOUT_MS, applicationName: 'ficus-bench', label: database })
    try {
      const result = await migrateDatabase(target, await loadMigrations(join(DEFAULT_MIGRATIONS_DIR, dir)))
      if (result.status === 'failed') throw new Error(`migrating ${database} failed: ${result.error?.message ?? ''}`)
    } finally {
      await target.close()
    }
  }
  await migrate(TEMPLATE_DATABASE, 'tenant')
  await migrate(CONTROL_DATABASE, 'control')
  await withClient(ADMIN_DATABASE, async (admin) => {
    for (let i = 0; i < databases; i++) await admin.query(`CREATE DATABASE "${schoolDatabaseName(i)}" TEMPLATE "${TEMPLATE_DATABASE}"`)
    await admin.query(`DROP DATABASE "${TEMPLATE_DATABASE}"`)
  })
  let next = 0
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, async () => {
    while (next < databases) {
      const name = schoolDatabaseName(next++)
      const pupils = Array.from({ length: BENCH_PUPILS }, (_, p) => `('p${p}', '${BENCH_CLASS}', 'Pupil', ${escapeLiteral(`Number ${p}`)})`).join(', ')
      await withClient(name, (client) => client.query(`BEGIN;
        INSERT INTO school_marker (school_id) VALUES (${escapeLiteral(name)});
        INSERT INTO classes (id, name) VALUES ('${BENCH_CLASS}', ${escapeLiteral(`Class ${BENCH_CLASS} of ${name}`)});
        INSERT INTO pupils (id, class_id, given_name, family_name) VALUES ${pupils};
        INSERT INTO attendance_marks (pupil_id, day, class_id, status) SELECT id, DATE '2026-11-27', class_id, 'present' FROM pupils;
        COMMIT`))
    }
  }))
  await withClient(CONTROL_DATABASE, (client) => client.query(
    // By name, not URL: TENANT_DATABASE_URL_TEMPLATE then says whether they are reached
    // directly or through PgBouncer, with the same registry.
    `INSERT INTO tenants (id, name, database_name, status, cohorts)
     SELECT id, 'School ' || id, name, 'active', string_to_array(cohorts, ',') FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, name, cohorts)`, [
      Array.from({ length: schools }, (_, i) => schoolId(i)),
      Array.from({ length: schools }, (_, i) => schoolDatabaseName(i % databases)),
      Array.from({ length: schools }, (_, i) => cohortsOf(i).join(','))
    ]))
  return { controlUrl: url(CONTROL_DATABASE), directTemplate: url('{database}'), databases, schools, setupMs: Date.now() - started }
}

/** Highest number of server connections to the bench's school databases seen while sampling. */
export class ConnectionPeak {
  readonly #client = new Client({ connectionString: url(ADMIN_DATABASE), connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'ficus-bench-sampler' })
  #peak = 0
  #samples = 0
  #stopped = false
  #loop: Promise<void> | undefined

  get peak (): number { return this.#peak }
  get samples (): number { return this.#samples }

  async start (intervalMs: number): Promise<void> {
    await this.#client.connect()
    this.#loop = (async () => {
      while (!this.#stopped) {
        const { rows } = await this.#client.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE $1 || '\\_s%'", [DB_PREFIX])
        this.#peak = Math.max(this.#peak, rows[0]?.n ?? 0)
        this.#samples++
        await new Promise((resolve) => setTimeout(resolve, intervalMs))
      }
    })()
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#loop === undefined) return
    await this.#loop
    await this.#client.end()
  }
}
