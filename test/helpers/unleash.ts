// Test kit for the flag tests: a real Unleash server (test/unleash-server, its own install) in a
// child process, on its own PostgreSQL database and a free loopback port, plus a typed Admin API
// client that changes flags the way a product owner's clicks in the Unleash UI do.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { compileCacheEnv } from './compile-cache.ts';

const SERVER_DIR = fileURLToPath(new URL('../unleash-server/', import.meta.url));
const SERVER_SCRIPT = fileURLToPath(new URL('../unleash-server/server.mjs', import.meta.url));
const PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_PREFIX = 'ficus_unleash_';
const SERVER_PACKAGE = new URL('../unleash-server/node_modules/unleash-server/package.json', import.meta.url);
/** Held while one test process builds the migrated template, so that the others wait for it. */
const TEMPLATE_LOCK_KEY = 0x66756e6c;
const HOST = '127.0.0.1';
const PROJECT = 'default';
/** The environment the backend token is bound to: what ficus sees through UNLEASH_API_TOKEN. */
export const UNLEASH_ENVIRONMENT = 'development';

const DEFAULT_START_TIMEOUT_MS = 60_000;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;
const HEALTH_POLL_MS = 100;
const HEALTH_REQUEST_TIMEOUT_MS = 2_000;
const ADMIN_REQUEST_TIMEOUT_MS = 10_000;
const LOG_TAIL_LINES = 40;
const PORT_ATTEMPTS = 3;
const MIN_NODE_MAJOR = 22;

/** What startUnleash needs from a tap test: only a place to register cleanup. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface StartUnleashOptions {
  /** Bound on the wait for /health, per start (first start runs the migrations). */
  startTimeoutMs?: number;
}

export interface UnleashServer {
  /** Base URL of the server, e.g. http://127.0.0.1:41234 (the SDK wants `${url}/api`). */
  readonly url: string;
  /** URL to hand to unleash-client (`url` option). */
  readonly apiUrl: string;
  /** Backend token bound to project `default`, environment `development`. */
  readonly clientToken: string;
  readonly adminToken: string;
  readonly environment: string;
  readonly databaseName: string;
  readonly admin: UnleashAdmin;
  /** Milliseconds the last start took until /health answered. */
  readonly lastStartMs: number;
  /** Stops the server process (the database and port are kept for start()). */
  stop(): Promise<void>;
  /** Starts the same server again: same database, same port, same tokens. */
  start(): Promise<void>;
  /**
   * Waits until the client API (what SDKs poll, with the backend token) serves features for
   * which `ready` holds. The server caches its answer per query shape and revision, and moves the
   * revision on from its event log once a second, so an Admin API change reaches SDKs up to ~1 s
   * later (and a change made of several calls can be seen half-done meanwhile). Wait on this
   * before creating a client whose first answers a test checks.
   */
  served(ready: (features: ServedFeature[]) => boolean, timeoutMs?: number): Promise<ServedFeature[]>;
}

/** A flag as the client API serves it to SDKs. */
export interface ServedFeature {
  name: string;
  type: string;
  enabled: boolean;
  strategies: Array<{ name: string; constraints?: Constraint[]; parameters?: Record<string, string>; segments?: number[] }>;
}

const DEFAULT_SERVED_TIMEOUT_MS = 10_000;
/** The client-spec version unleash-client 6 announces (its SUPPORTED_SPEC_VERSION). */
const SDK_CLIENT_SPEC = '5.2.0';

export async function startUnleash(t: TeardownHost, options: StartUnleashOptions = {}): Promise<UnleashServer> {
  assertNodeVersion();
  if (!existsSync(SERVER_PACKAGE)) {
    throw new Error(`unleash-server is not installed: run \`npm ci\` in ${SERVER_DIR} (.ci/setup.d/30-unleash-server.sh does)`);
  }
  await dropOrphanDatabases();
  const template = await migratedTemplate(options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  const databaseName = `${DB_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminSql(`CREATE DATABASE ${databaseName} TEMPLATE ${template}`);
  const server = new UnleashProcess(databaseName, options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  t.teardown(async () => {
    await server.stop();
    await adminSql(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
  });
  await server.startOnFreePort();
  return server;
}

/**
 * A database that this version of the server has migrated, with no tokens in it: each test's
 * database is a copy, so a server starts as on a restart (seconds) instead of running its hundreds
 * of migrations every time. Built once per server version, by the first test process to need it.
 */
async function migratedTemplate(startTimeoutMs: number): Promise<string> {
  const version = (JSON.parse(readFileSync(SERVER_PACKAGE, 'utf8')) as { version: string }).version;
  const name = `${DB_PREFIX}template_${version.replace(/[^0-9a-z]/gi, '_')}`;
  const lock = new pg.Client({ connectionString: PG_ADMIN_URL });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK_KEY]);
    const { rowCount } = await lock.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) {
      // Built under another name and renamed once whole: a run killed midway leaves no template.
      const building = `${name}_building`;
      await lock.query(`DROP DATABASE IF EXISTS ${building} WITH (FORCE)`);
      await lock.query(`CREATE DATABASE ${building}`);
      const server = new UnleashProcess(building, startTimeoutMs, { withTokens: false });
      await server.startOnFreePort();
      await server.stop();
      await lock.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    }
  } finally {
    await lock.end();
  }
  return name;
}

class UnleashProcess implements UnleashServer {
  readonly clientToken: string;
  readonly adminToken: string;
  readonly environment = UNLEASH_ENVIRONMENT;
  readonly databaseName: string;
  readonly admin: UnleashAdmin;
  lastStartMs = 0;
  #port = 0;
  #startTimeoutMs: number;
  #child: ChildProcess | undefined;
  #log: string[] = [];
  /** Why the server is not there: it was stopped, or it died (then with its log tail). */
  #died: string | undefined;
  #withTokens: boolean;

  constructor(databaseName: string, startTimeoutMs: number, options: { withTokens: boolean } = { withTokens: true }) {
    this.databaseName = databaseName;
    this.#withTokens = options.withTokens;
    this.#startTimeoutMs = startTimeoutMs;
    const secret = randomBytes(12).toString('hex');
    this.adminToken = `*:*.admin-${secret}`;
    this.clientToken = `${PROJECT}:${UNLEASH_ENVIRONMENT}.backend-${secret}`;
    this.admin = new UnleashAdmin(() => this.url, this.adminToken, () => this.#died);
  }

  get url(): string {
    return `http://${HOST}:${this.#port}`;
  }

  get apiUrl(): string {
    return `${this.url}/api`;
  }

  async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#port = await freePort();
      try {
        await this.start();
        return;
      } catch (error) {
        // Another process may grab the port between our probe and the server's listen.
        if (attempt >= PORT_ATTEMPTS || !this.#log.some((line) => line.includes('EADDRINUSE'))) throw error;
      }
    }
  }

  async start(): Promise<void> {
    if (this.#child !== undefined) throw new Error(`Unleash on ${this.url} is already running`);
    const startedAt = performance.now();
    this.#log = [];
    this.#died = undefined;
    const child = spawn(process.execPath, [SERVER_SCRIPT], {
      cwd: SERVER_DIR,
      // A clean environment: tap's NODE_OPTIONS hooks and any DATABASE_* or UNLEASH_* of the
      // caller must not reach the server.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        TZ: 'UTC',
        NODE_ENV: 'production',
        DATABASE_URL: `postgres://postgres@${HOST}:5432/${this.databaseName}`,
        DATABASE_SSL: 'false',
        DATABASE_POOL_MAX: '4',
        HTTP_HOST: HOST,
        HTTP_PORT: String(this.#port),
        // The server creates these only in a database that holds no token yet.
        ...(this.#withTokens ? { INIT_ADMIN_API_TOKENS: this.adminToken, INIT_BACKEND_API_TOKENS: this.clientToken } : {}),
        CHECK_VERSION: 'false',
        SEND_TELEMETRY: 'false',
        SCARF_ANALYTICS: 'false',
        DO_NOT_TRACK: '1',
        LOG_LEVEL: 'warn',
        ...compileCacheEnv(),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child = child;
    // server.mjs prints this once its own listen succeeded: the port is ours, not a squatter's.
    let listening = false;
    const collect = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        if (/^unleash \S+ listening on \d+$/.test(line.trim())) listening = true;
        this.#log.push(line);
        if (this.#log.length > LOG_TAIL_LINES) this.#log.shift();
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('exit', (code, signal) => {
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#died = `the Unleash server on ${this.url} exited with ${signal ?? `code ${code}`} while in use.\n${this.logTail()}`;
    });
    try {
      await this.#waitHealthy(child, () => listening);
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.lastStartMs = Math.round(performance.now() - startedAt);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    // From here on its exit is asked for, not a death to report; a call made after it (a test
    // still running once its file's teardown ran, after a timeout say) is told so.
    this.#child = undefined;
    this.#died = `the Unleash server on ${this.url} was stopped (stop(), or the test's teardown)`;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), DEFAULT_STOP_TIMEOUT_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async served(ready: (features: ServedFeature[]) => boolean, timeoutMs = DEFAULT_SERVED_TIMEOUT_MS): Promise<ServedFeature[]> {
    const deadline = performance.now() + timeoutMs;
    let last: ServedFeature[] = [];
    while (performance.now() < deadline) {
      const res = await explained(fetch(`${this.apiUrl}/client/features`, {
        // The server caches each query shape per revision; asking exactly as unleash-client 6 does
        // (same spec version) reads the very entry SDKs will be served.
        headers: { authorization: this.clientToken, 'unleash-appname': 'ficus-test-harness', 'unleash-client-spec': SDK_CLIENT_SPEC },
        signal: AbortSignal.timeout(HEALTH_REQUEST_TIMEOUT_MS),
      }), 'GET /api/client/features', () => this.#died);
      if (!res.ok) throw new UnleashAdminError('GET', '/api/client/features', res.status, await res.text());
      last = ((await res.json()) as { features: ServedFeature[] }).features;
      if (ready(last)) return last;
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(`client API did not serve the expected flags within ${timeoutMs} ms; it serves: ${last.map((f) => `${f.name}=${f.enabled}`).join(', ')}`);
  }

  async #waitHealthy(child: ChildProcess, listening: () => boolean): Promise<void> {
    const deadline = performance.now() + this.#startTimeoutMs;
    let exitedWith: string | undefined;
    child.once('exit', (code, signal) => {
      exitedWith = `exited with ${signal ?? `code ${code}`}`;
    });
    while (performance.now() < deadline) {
      if (exitedWith !== undefined) {
        throw new Error(`Unleash server ${exitedWith} before it was healthy.\n${this.logTail()}`);
      }
      try {
        // A /health answer alone is not enough: between freePort() and the server's listen another
        // process may take the port and answer it, while ours then dies of EADDRINUSE.
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(HEALTH_REQUEST_TIMEOUT_MS) });
        await res.body?.cancel();
        if (res.ok && listening() && exitedWith === undefined) return;
      } catch {
        // not listening yet
      }
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(`Unleash server on ${this.url} not healthy after ${this.#startTimeoutMs} ms.\n${this.logTail()}`);
  }

  logTail(): string {
    return this.#log.length === 0 ? '(server printed nothing)' : `server log tail:\n${this.#log.join('\n')}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Admin API (Unleash 8, /api/admin): the calls behind the UI's buttons.

export type FlagType = 'release' | 'kill-switch' | 'experiment' | 'operational' | 'permission';

export type ConstraintOperator =
  | 'IN'
  | 'NOT_IN'
  | 'STR_CONTAINS'
  | 'STR_STARTS_WITH'
  | 'STR_ENDS_WITH'
  | 'NUM_EQ'
  | 'NUM_GT'
  | 'NUM_GTE'
  | 'NUM_LT'
  | 'NUM_LTE'
  | 'DATE_AFTER'
  | 'DATE_BEFORE'
  | 'SEMVER_EQ'
  | 'SEMVER_GT'
  | 'SEMVER_LT';

export interface Constraint {
  contextName: string;
  operator: ConstraintOperator;
  values?: string[];
  value?: string;
  inverted?: boolean;
  caseInsensitive?: boolean;
}

export interface StrategyInput {
  /** Strategy type: `default` (on for everyone who passes the constraints) or `flexibleRollout`. */
  name: 'default' | 'flexibleRollout';
  title?: string;
  parameters?: Record<string, string>;
  constraints?: Constraint[];
  segments?: number[];
  disabled?: boolean;
}

export interface Strategy extends StrategyInput {
  id: string;
}

export interface Segment {
  id: number;
  name: string;
  constraints: Constraint[];
}

/** `contextName IN values`: the constraint the UI builds with the "is one of" operator. */
export function constraintIn(contextName: string, values: string[]): Constraint {
  return { contextName, operator: 'IN', values };
}

export function constraintNotIn(contextName: string, values: string[]): Constraint {
  return { contextName, operator: 'NOT_IN', values };
}

export function defaultStrategy(constraints: Constraint[] = [], segments: number[] = []): StrategyInput {
  return { name: 'default', constraints, segments };
}

export interface RolloutOptions {
  /** Percentage 0..100 of stickiness values that get the flag. */
  rollout: number;
  /** Context field hashed to pick the side; never leave it to `default`/`random` for ficus. */
  stickiness: string;
  /** Hash group; defaults to the flag name on the server. Same groupId => same schools move. */
  groupId?: string;
  constraints?: Constraint[];
  segments?: number[];
}

export function flexibleRollout(options: RolloutOptions): StrategyInput {
  const parameters: Record<string, string> = { rollout: String(options.rollout), stickiness: options.stickiness };
  if (options.groupId !== undefined) parameters.groupId = options.groupId;
  return { name: 'flexibleRollout', parameters, constraints: options.constraints ?? [], segments: options.segments ?? [] };
}

export class UnleashAdminError extends Error {
  readonly status: number;
  readonly body: string;

  constructor(method: string, path: string, status: number, body: string) {
    super(`Unleash Admin API ${method} ${path} answered ${status}: ${body.slice(0, 500)}`);
    this.name = 'UnleashAdminError';
    this.status = status;
    this.body = body;
  }
}

const HTTP_CONFLICT = 409;
const LIFECYCLE_POLL_MS = 20;

export class UnleashAdmin {
  #baseUrl: () => string;
  #token: string;
  #died: () => string | undefined;

  constructor(baseUrl: () => string, token: string, died: () => string | undefined = () => undefined) {
    this.#baseUrl = baseUrl;
    this.#token = token;
    this.#died = died;
  }

  /** Configure > Context fields > New: lets constraints (and stickiness, if set) use the field. */
  async createContextField(field: { name: string; description?: string; stickiness?: boolean }): Promise<void> {
    try {
      await this.#request('POST', '/api/admin/context', { description: '', stickiness: false, ...field });
    } catch (error) {
      // Context fields are global to the server; a second test creating the same one is fine.
      if (!(error instanceof UnleashAdminError && error.status === HTTP_CONFLICT)) throw error;
    }
  }

  async createFlag(name: string, type: FlagType = 'release', description = ''): Promise<void> {
    await this.#request('POST', `/api/admin/projects/${PROJECT}/features`, { name, type, description });
  }

  async addStrategy(flag: string, environment: string, strategy: StrategyInput): Promise<Strategy> {
    return (await this.#request('POST', `${strategiesPath(flag, environment)}`, strategy)) as Strategy;
  }

  /** Replaces the whole strategy (what the UI's strategy form saves). */
  async updateStrategy(flag: string, environment: string, strategyId: string, strategy: StrategyInput): Promise<Strategy> {
    return (await this.#request('PUT', `${strategiesPath(flag, environment)}/${strategyId}`, strategy)) as Strategy;
  }

  async deleteStrategy(flag: string, environment: string, strategyId: string): Promise<void> {
    await this.#request('DELETE', `${strategiesPath(flag, environment)}/${strategyId}`);
  }

  async listStrategies(flag: string, environment: string): Promise<Strategy[]> {
    return (await this.#request('GET', strategiesPath(flag, environment))) as Strategy[];
  }

  /** Turning an environment on with no strategy makes the server add a 100% flexibleRollout. */
  async enable(flag: string, environment: string): Promise<void> {
    await this.#request('POST', `${environmentPath(flag, environment)}/on`);
  }

  async disable(flag: string, environment: string): Promise<void> {
    await this.#request('POST', `${environmentPath(flag, environment)}/off`);
  }

  async createSegment(name: string, constraints: Constraint[], description = ''): Promise<Segment> {
    return (await this.#request('POST', '/api/admin/segments', { name, description, constraints })) as Segment;
  }

  async updateSegment(id: number, name: string, constraints: Constraint[]): Promise<void> {
    await this.#request('PUT', `/api/admin/segments/${id}`, { name, constraints });
  }

  /** Archive: the flag disappears from the client API (SDKs then answer false/fallback). */
  async archiveFlag(name: string): Promise<void> {
    await this.#request('DELETE', `/api/admin/projects/${PROJECT}/features/${name}`);
  }

  /** Archive, then delete for good (the name can be reused). */
  async deleteFlag(name: string): Promise<void> {
    await this.archiveFlag(name);
    // The server records the 'archived' lifecycle stage after it answers, from an event; a flag
    // deleted before that makes the insert fail its foreign key, and the server exits on it.
    const deadline = performance.now() + ADMIN_REQUEST_TIMEOUT_MS;
    while (!(await this.#lifecycle(name)).some((entry) => entry.stage === 'archived')) {
      if (performance.now() > deadline) throw new Error(`Unleash did not record ${name} as archived within ${ADMIN_REQUEST_TIMEOUT_MS} ms`);
      await sleep(LIFECYCLE_POLL_MS);
    }
    await this.#request('DELETE', `/api/admin/archive/${name}`);
  }

  async #lifecycle(name: string): Promise<Array<{ stage: string }>> {
    return (await this.#request('GET', `/api/admin/projects/${PROJECT}/features/${encodeURIComponent(name)}/lifecycle`)) as Array<{ stage: string }>;
  }

  async #request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { authorization: this.#token, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(ADMIN_REQUEST_TIMEOUT_MS) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await explained(fetch(`${this.#baseUrl()}${path}`, init), `${method} ${path}`, this.#died);
    const text = await res.text();
    if (!res.ok) throw new UnleashAdminError(method, path, res.status, text);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }
}

function environmentPath(flag: string, environment: string): string {
  return `/api/admin/projects/${PROJECT}/features/${encodeURIComponent(flag)}/environments/${encodeURIComponent(environment)}`;
}

function strategiesPath(flag: string, environment: string): string {
  return `${environmentPath(flag, environment)}/strategies`;
}

// ---------------------------------------------------------------------------------------------

function assertNodeVersion(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < MIN_NODE_MAJOR) {
    throw new Error(`unleash-server 8 needs Node >= ${MIN_NODE_MAJOR}; tests run on ${process.version} (${process.execPath})`);
  }
}

async function adminSql(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** Databases left by a test process that was killed before its teardown ran. */
async function dropOrphanDatabases(): Promise<void> {
  const { rows } = await adminSql('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${DB_PREFIX}%`]);
  for (const row of rows as Array<{ datname: string }>) {
    const pid = Number(row.datname.slice(DB_PREFIX.length).split('_')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    await adminSql(`DROP DATABASE IF EXISTS ${row.datname} WITH (FORCE)`).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

/** A refused or failed call says so, and why when the server process is known to have died. */
async function explained(response: Promise<Response>, call: string, died: () => string | undefined): Promise<Response> {
  try {
    return await response;
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message;
    throw new Error(`Unleash ${call}: ${(error as Error).message}${cause === undefined ? '' : ` (${cause})`}; ${died() ?? 'its process is still running'}`, { cause: error });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
