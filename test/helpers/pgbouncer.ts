// Test and bench kit: a private PgBouncer (Debian's) on a free loopback port, in front of the
// local PostgreSQL, with a generated ini: transaction pooling, trust auth, every database
// reachable under its own name. Counts its server connections from its admin console.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { Client } from 'pg'

const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000
// PgBouncer refuses to run as root; it then switches to the PostgreSQL system user.
const RUN_AS_WHEN_ROOT = 'postgres'

export interface PgBouncerOptions {
  /** PostgreSQL behind it (default the local server). */
  readonly serverHost?: string
  readonly serverPort?: number
  readonly user?: string
  /** Server connections per (database, user) pool: PgBouncer's `default_pool_size`. */
  readonly poolSize: number
  /** Client connections accepted: `max_client_conn`. */
  readonly maxClientConnections: number
  /** Server connections per database whatever the users: `max_db_connections` (0 = no cap). */
  readonly maxDbConnections?: number
  /** Server connections per user whatever the databases: `max_user_connections` (0 = no cap). */
  readonly maxUserConnections?: number
  /** Idle server connections are closed after this: `server_idle_timeout`. */
  readonly serverIdleTimeoutSeconds?: number
}

export interface PoolCounts {
  /** Server connections PgBouncer holds now, over every pool (active, idle, used, tested, login). */
  readonly server: number
  /** Client connections PgBouncer holds now. */
  readonly client: number
  /** Clients waiting for a server connection. */
  readonly waiting: number
}

export interface PgBouncer {
  readonly port: number
  /** A connection string for `database` through PgBouncer. */
  url (database: string): string
  /** `{database}` template for TENANT_DATABASE_URL_TEMPLATE. */
  readonly urlTemplate: string
  counts (): Promise<PoolCounts>
  log (): string
  stop (): Promise<void>
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (typeof address !== 'object' || address === null) throw new Error('no port')
  return address.port
}

export async function startPgBouncer (options: PgBouncerOptions): Promise<PgBouncer> {
  const user = options.user ?? 'postgres'
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ficus-pgbouncer-'))
  const ini = join(dir, 'pgbouncer.ini')
  const logFile = join(dir, 'pgbouncer.log')
  writeFileSync(join(dir, 'users.txt'), `"${user}" ""\n`)
  writeFileSync(ini, [
    '[databases]',
    // Any database name is passed through to the server under the same name.
    `* = host=${options.serverHost ?? '127.0.0.1'} port=${options.serverPort ?? 5432}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'users.txt')}`,
    `admin_users = ${user}`,
    'pool_mode = transaction',
    `default_pool_size = ${options.poolSize}`,
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    `max_client_conn = ${options.maxClientConnections}`,
    `max_db_connections = ${options.maxDbConnections ?? 0}`,
    `max_user_connections = ${options.maxUserConnections ?? 0}`,
    `server_idle_timeout = ${options.serverIdleTimeoutSeconds ?? 60}`,
    // Transaction pooling: nothing is reset between clients, as nothing outlives a transaction.
    'server_reset_query =',
    `logfile = ${logFile}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    ''
  ].join('\n'))
  const asRoot = userInfo().uid === 0
  if (asRoot) {
    const { uid, gid } = lookupUser(RUN_AS_WHEN_ROOT)
    for (const file of [dir, ini, join(dir, 'users.txt')]) chownSync(file, uid, gid)
    chmodSync(dir, 0o700)
  }
  const child: ChildProcess = spawn('pgbouncer', [...(asRoot ? ['-u', RUN_AS_WHEN_ROOT] : []), ini], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const log = (): string => { try { return readFileSync(logFile, 'utf8') } catch { return '' } }
  const admin = (): Client => new Client({ host: '127.0.0.1', port, user, database: 'pgbouncer', connectionTimeoutMillis: 2_000 })

  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}): ${stderr} ${log()}`)
    const client = admin()
    try {
      await client.connect()
      await client.query('SHOW VERSION')
      await client.end()
      break
    } catch (error) {
      await client.end().catch(() => {})
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`pgbouncer did not answer on ${port}: ${(error as Error).message} ${stderr} ${log()}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  return {
    port,
    url: (database) => `postgres://${user}@127.0.0.1:${port}/${database}`,
    urlTemplate: `postgres://${user}@127.0.0.1:${port}/{database}`,
    async counts () {
      const client = admin()
      await client.connect()
      try {
        // The admin console speaks the simple protocol only: no parameters.
        const { rows } = await client.query<Record<string, string>>('SHOW POOLS')
        const own = rows.filter((row) => row.database !== 'pgbouncer')
        const sumOwn = (columns: readonly string[]): number => own.reduce((total, row) => total + columns.reduce((n, c) => n + Number(row[c] ?? 0), 0), 0)
        return {
          server: sumOwn(['sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login']),
          client: sumOwn(['cl_active', 'cl_waiting']),
          waiting: sumOwn(['cl_waiting'])
        }
      } finally {
        await client.end()
      }
    },
    log,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT')
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

function lookupUser (name: string): { uid: number, gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`))
  const fields = line?.split(':')
  if (fields === undefined || fields.length < 4) throw new Error(`no system user ${name} to run pgbouncer as`)
  return { uid: Number(fields[2]), gid: Number(fields[3]) }
}
