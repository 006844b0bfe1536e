// Proves the Unleash test bed (test/helpers/unleash.ts) against the real server and the real
// unleash-client, and pins down the client behaviours ficus's flag wrapper has to design around.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Unleash } from 'unleash-client';
import type { Context, UnleashConfig } from 'unleash-client';
import {
  constraintIn,
  constraintNotIn,
  defaultStrategy,
  flexibleRollout,
  startUnleash,
} from '../helpers/unleash.ts';
import type { TeardownHost, UnleashServer } from '../helpers/unleash.ts';

const REFRESH_MS = 1_000;
const SYNC_TIMEOUT_MS = 10_000;
const FLIP_BOUND_MS = 2_000;
const FLIP_WAIT_MS = 10_000;
const POLL_MS = 10;
const SCHOOLS = 1_000;
const ROLLOUT_PERCENT = 30;
const ROLLOUT_TOLERANCE = 50;
// A fixed hash group makes the moved set the same on every run (it defaults to the flag name).
const ROLLOUT_GROUP = 'harness-rollout';
const OUTAGE_OBSERVE_MS = 5_000;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let flagCount = 0;
/** Flag names unique per test and per run, so tests may share one server. */
function flagName(label: string): string {
  flagCount += 1;
  return `harness-${label}-${run}-${flagCount}`;
}

function school(tenantId: string, extra: Record<string, string> = {}): Context {
  return { properties: { tenantId, ...extra } };
}

interface ClientEvents {
  errors: Array<{ at: number; message: string }>;
  warnings: string[];
  order: string[];
}

function newClient(t: TeardownHost, server: UnleashServer, extra: Partial<UnleashConfig> = {}): { client: Unleash; events: ClientEvents } {
  const backupPath = mkdtempSync(join(tmpdir(), 'ficus-unleash-backup-'));
  t.teardown(() => rmSync(backupPath, { recursive: true, force: true }));
  const client = new Unleash({
    url: server.apiUrl,
    appName: 'ficus-harness',
    customHeaders: { Authorization: server.clientToken },
    refreshInterval: REFRESH_MS,
    disableMetrics: true,
    skipInstanceCountWarning: true,
    backupPath,
    ...extra,
  });
  const events: ClientEvents = { errors: [], warnings: [], order: [] };
  // Without an 'error' listener the client's first failed fetch throws out of an EventEmitter.
  client.on('error', (error: Error) => events.errors.push({ at: performance.now(), message: error.message }));
  client.on('warn', (message: unknown) => events.warnings.push(String(message)));
  client.on('ready', () => events.order.push('ready'));
  client.on('synchronized', () => events.order.push('synchronized'));
  t.teardown(() => destroySafely(client));
  return { client, events };
}

/**
 * destroy() leaves an in-flight fetch running with no 'error' listener behind it (see the last
 * test); a fetch to a stopped or unreachable server then crashes the process.
 */
function destroySafely(client: Unleash): void {
  client.destroy();
  (client as unknown as { repository: EventEmitter }).repository.on('error', () => undefined);
}

/** Waits until SDKs are served `flag` switched on (see UnleashServer.served). */
async function servedOn(flag: string): Promise<void> {
  await unleash.served((features) => features.some((f) => f.name === flag && f.enabled));
}

async function synchronized(client: Unleash): Promise<void> {
  if (client.isSynchronized()) return;
  await once(client, 'synchronized', { signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) });
}

/** Polls isEnabled until it answers `expected`; returns the milliseconds it took. */
async function waitFor(client: Unleash, flag: string, context: Context, expected: boolean, boundMs = FLIP_WAIT_MS): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < boundMs) {
    if (client.isEnabled(flag, context) === expected) return performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`${flag} did not become ${expected} within ${boundMs} ms`);
}

async function deadUrl(): Promise<string> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const address = probe.address();
  probe.close();
  await once(probe, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}/api`;
}

const unleash = await startUnleash(t);
t.comment(`unleash-server started in ${unleash.lastStartMs} ms (on a copy of the migrated template database)`);
await unleash.admin.createContextField({ name: 'tenantId', description: 'School (sub-domain)', stickiness: true });
await unleash.admin.createContextField({ name: 'cohort', description: 'One cohort of the school' });

t.test('a tenantId IN [school-a] constraint moves school-a only', async (t) => {
  const flag = flagName('tenant');
  await unleash.admin.createFlag(flag);
  await unleash.admin.addStrategy(flag, unleash.environment, defaultStrategy([constraintIn('tenantId', ['school-a'])]));
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const { client } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.isEnabled(flag, school('school-a')), true, 'school-a is on');
  t.equal(client.isEnabled(flag, school('school-b')), false, 'school-b is off');
  t.equal(client.isEnabled(flag, { tenantId: 'school-a' }), true, 'a top-level context field is read like a property');
});

t.test('a constraint on a custom field that the context lacks', async (t) => {
  const onlyA = flagName('missing-in');
  const notA = flagName('missing-not-in');
  await unleash.admin.createFlag(onlyA);
  await unleash.admin.addStrategy(onlyA, unleash.environment, defaultStrategy([constraintIn('tenantId', ['school-a'])]));
  await unleash.admin.enable(onlyA, unleash.environment);
  await unleash.admin.createFlag(notA);
  await unleash.admin.addStrategy(notA, unleash.environment, defaultStrategy([constraintNotIn('tenantId', ['school-a'])]));
  await unleash.admin.enable(notA, unleash.environment);
  await Promise.all([servedOn(onlyA), servedOn(notA)]);
  const { client } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.isEnabled(onlyA, {}), false, 'IN on a missing value is false');
  t.equal(client.isEnabled(notA, {}), true, 'NOT_IN on a missing value is TRUE: always send tenantId');
});

t.test(`a ${ROLLOUT_PERCENT}% flexibleRollout sticky on tenantId`, async (t) => {
  const flag = flagName('rollout');
  await unleash.admin.createFlag(flag);
  await unleash.admin.addStrategy(flag, unleash.environment, flexibleRollout({ rollout: ROLLOUT_PERCENT, stickiness: 'tenantId', groupId: ROLLOUT_GROUP }));
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const replicaA = newClient(t, unleash).client;
  const replicaB = newClient(t, unleash, { appName: 'ficus-harness-replica' }).client;
  await Promise.all([synchronized(replicaA), synchronized(replicaB)]);
  const schools = Array.from({ length: SCHOOLS }, (_, i) => `school-${i}`);
  const answers = schools.map((id) => replicaA.isEnabled(flag, school(id)));
  const moved = answers.filter(Boolean).length;
  t.comment(`${moved} of ${SCHOOLS} schools moved at ${ROLLOUT_PERCENT}%`);
  t.ok(Math.abs(moved - (SCHOOLS * ROLLOUT_PERCENT) / 100) <= ROLLOUT_TOLERANCE, `${moved} is ${ROLLOUT_PERCENT}% ± 5% of ${SCHOOLS}`);
  t.same(schools.map((id) => replicaA.isEnabled(flag, school(id))), answers, 'same answer on every request');
  t.same(schools.map((id) => replicaB.isEnabled(flag, school(id))), answers, 'same answer on another client (replica)');
  t.equal(replicaA.isEnabled(flag, { userId: 'u1', sessionId: 's1' }), false, 'no tenantId: off, never random');
});

t.test('a kill-switch flag', async (t) => {
  const flag = flagName('kill');
  await unleash.admin.createFlag(flag, 'kill-switch');
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const { client } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.getFeatureToggleDefinition(flag)?.type, 'kill-switch', 'the client sees the flag type');
  t.equal(client.isEnabled(flag, school('school-x')), true, 'enabling with no strategy switches it on for everyone');
  await unleash.admin.disable(flag, unleash.environment);
  await waitFor(client, flag, school('school-x'), false);
  t.pass('disabled again after a refresh');
});

t.test('a segment attached to a strategy, then edited', async (t) => {
  const flag = flagName('segment');
  const segment = await unleash.admin.createSegment(`pilot-schools-${run}`, [constraintIn('tenantId', ['school-a', 'school-c'])]);
  await unleash.admin.createFlag(flag);
  await unleash.admin.addStrategy(flag, unleash.environment, defaultStrategy([], [segment.id]));
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const { client } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.isEnabled(flag, school('school-a')), true, 'school-a is in the segment');
  t.equal(client.isEnabled(flag, school('school-b')), false, 'school-b is not');
  await unleash.admin.updateSegment(segment.id, `pilot-schools-${run}`, [constraintIn('tenantId', ['school-a', 'school-b'])]);
  await waitFor(client, flag, school('school-b'), true);
  t.equal(client.isEnabled(flag, school('school-c')), false, 'school-c left with the segment edit');
});

t.test('cohorts: a school in [pilot, wave-1] against cohort constraints', async (t) => {
  const inPilot = flagName('cohort-in');
  const notPilot = flagName('cohort-not-in');
  const contains = flagName('cohorts-contains');
  await unleash.admin.createFlag(inPilot);
  await unleash.admin.addStrategy(inPilot, unleash.environment, defaultStrategy([constraintIn('cohort', ['pilot'])]));
  await unleash.admin.enable(inPilot, unleash.environment);
  await unleash.admin.createFlag(notPilot);
  await unleash.admin.addStrategy(notPilot, unleash.environment, defaultStrategy([constraintNotIn('cohort', ['pilot'])]));
  await unleash.admin.enable(notPilot, unleash.environment);
  await unleash.admin.createFlag(contains);
  await unleash.admin.addStrategy(contains, unleash.environment, defaultStrategy([{ contextName: 'cohorts', operator: 'STR_CONTAINS', values: [',pilot,'] }]));
  await unleash.admin.enable(contains, unleash.environment);
  await Promise.all([servedOn(inPilot), servedOn(notPilot), servedOn(contains)]);
  const { client } = newClient(t, unleash);
  await synchronized(client);
  const cohorts = ['pilot', 'wave-1'];
  const anyCohort = (flag: string, list: string[]): boolean => list.some((cohort) => client.isEnabled(flag, school('school-a', { cohort })));

  t.equal(client.isEnabled(inPilot, school('school-a', { cohort: cohorts.join(',') })), false, 'a joined list is one opaque string to IN');
  t.equal(anyCohort(inPilot, cohorts), true, 'one evaluation per cohort, OR: pilot school is on');
  t.equal(anyCohort(inPilot, ['wave-2']), false, 'one evaluation per cohort, OR: non-pilot school is off');
  t.equal(anyCohort(notPilot, cohorts), true, 'but NOT_IN per cohort is wrongly on for a pilot school (wave-1 passes)');
  const delimited = (list: string[]): Context => school('school-a', { cohorts: `,${list.join(',')},` });
  t.equal(client.isEnabled(contains, delimited(cohorts)), true, 'delimited string + STR_CONTAINS ",pilot,": on');
  t.equal(client.isEnabled(contains, delimited(['wave-2', 'pilot-2'])), false, 'delimiters stop partial matches');
});

t.test('a flip through the Admin API reaches a client polling every second', async (t) => {
  const flag = flagName('flip');
  await unleash.admin.createFlag(flag);
  await unleash.admin.addStrategy(flag, unleash.environment, defaultStrategy([constraintIn('tenantId', ['school-a'])]));
  const { client } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.isEnabled(flag, school('school-a')), false, 'off before the flip');
  const clicked = performance.now();
  await unleash.admin.enable(flag, unleash.environment);
  await waitFor(client, flag, school('school-a'), true);
  const latency = Math.round(performance.now() - clicked);
  t.comment(`flip latency: ${latency} ms (server revision poll 1 s + client refresh ${REFRESH_MS} ms)`);
  t.ok(latency <= FLIP_BOUND_MS, `flip seen within ${FLIP_BOUND_MS} ms (was ${latency} ms)`);
});

t.test('server stopped: the client keeps its flags; restarted: flips propagate again', async (t) => {
  const flag = flagName('outage');
  await unleash.admin.createFlag(flag);
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const { client, events } = newClient(t, unleash);
  await synchronized(client);
  t.equal(client.isEnabled(flag, school('school-a')), true, 'on before the outage');

  await unleash.stop();
  const outageStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_OBSERVE_MS));
  const outageErrors = events.errors.filter((e) => e.at >= outageStart);
  const gaps = outageErrors.slice(1).map((e, i) => Math.round(e.at - (outageErrors[i]?.at ?? e.at)));
  t.comment(`${outageErrors.length} 'error' events in ${OUTAGE_OBSERVE_MS} ms of outage, ${gaps.join('/') || '-'} ms apart: ${outageErrors[0]?.message ?? 'none'}`);
  // Each poll retries a refused connection twice (1 s, then 2 s back-off) before it reports.
  t.ok(outageErrors.length >= 1, "the outage surfaces as repeated 'error' events, one per failed poll");
  t.equal(client.isEnabled(flag, school('school-a')), true, 'last known flags are kept during the outage');

  await unleash.start();
  t.comment(`restart took ${unleash.lastStartMs} ms`);
  await unleash.admin.disable(flag, unleash.environment);
  const latency = await waitFor(client, flag, school('school-a'), false);
  t.comment(`flip after restart seen in ${Math.round(latency)} ms`);
});

t.test('before it is ready the client answers the fallback and warns on every call', async (t) => {
  const flag = flagName('early');
  await unleash.admin.createFlag(flag);
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const { client, events } = newClient(t, unleash);
  const readyEvent = once(client, 'ready', { signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) });
  t.equal(client.isEnabled(flag, school('school-a')), false, 'unloaded client: false although the flag is on');
  t.equal(client.isEnabled(flag, school('school-a'), true), true, 'or the explicit fallback');
  t.equal(events.warnings.filter((w) => w.includes('has not been initialized')).length, 2, 'one warning per call');
  const atSynchronized = once(client, 'synchronized').then(() => client.isEnabled(flag, school('school-a')));
  t.equal(await atSynchronized, true, "the real answer from the 'synchronized' event on");
  await readyEvent;
  t.same(events.order, ['synchronized', 'ready'], "after the first fetch 'synchronized' is emitted BEFORE 'ready'");
});

t.test('server unreachable at start: bootstrap and backup file', async (t) => {
  const flag = flagName('offline');
  const url = await deadUrl();
  const bootstrap = { data: [{ name: flag, enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [] }] }] };
  const fromBootstrap = newClient(t, unleash, { url, bootstrap });
  await once(fromBootstrap.client, 'ready', { signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) });
  t.equal(fromBootstrap.client.isEnabled(flag, school('school-a')), true, 'bootstrap answers');
  t.equal(fromBootstrap.client.isSynchronized(), true, 'isSynchronized() is true from a bootstrap alone: it does not mean "reached the server"');
  t.same(fromBootstrap.events.order, ['synchronized', 'ready'], 'a bootstrap load fires synchronized and ready');

  // A client that once reached the server leaves a backup file; a later one started while the
  // server is unreachable loads it.
  await unleash.admin.createFlag(flag);
  await unleash.admin.enable(flag, unleash.environment);
  await servedOn(flag);
  const backupPath = mkdtempSync(join(tmpdir(), 'ficus-unleash-backup-'));
  t.teardown(() => rmSync(backupPath, { recursive: true, force: true }));
  const online = newClient(t, unleash, { backupPath });
  await synchronized(online.client);
  // The client writes its backup after it has announced the new flags, not before: wait for it.
  const deadline = Date.now() + SYNC_TIMEOUT_MS;
  const backupWritten = () => readdirSync(backupPath).some((f) => f.includes('ficus-harness'));
  while (!backupWritten() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  destroySafely(online.client);
  t.ok(backupWritten(), 'backup file written after the first fetch');
  const fromBackup = newClient(t, unleash, { url, backupPath });
  await once(fromBackup.client, 'ready', { signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) });
  t.equal(fromBackup.client.isEnabled(flag, school('school-a')), true, 'backup answers');
  t.equal(fromBackup.client.isSynchronized(), false, 'a backup load is ready but not synchronized');
});

// destroy() stops the fetcher and removes the repository's listeners, but does not abort the
// request in flight; if that request then fails (timeout, bad body) the repository emits 'error'
// with no listener and the process dies. A stub server makes the failing request deterministic.
const RACE_SCRIPT = `
import { createServer } from 'node:http';
import { Unleash } from 'unleash-client';
const mitigate = process.argv[1] === 'mitigate';
let requests = 0;
let release;
const server = createServer((req, res) => {
  requests += 1;
  res.setHeader('content-type', 'application/json');
  if (requests === 1) { res.end(JSON.stringify({ version: 2, features: [] })); return; }
  release = () => res.end('{not json');
});
server.listen(0, '127.0.0.1', () => {
  const client = new Unleash({ appName: 'race', url: 'http://127.0.0.1:' + server.address().port + '/api',
    refreshInterval: 50, disableMetrics: true, skipInstanceCountWarning: true, backupPath: process.argv[2] });
  client.on('error', () => {});
  const waitInFlight = setInterval(() => {
    if (release === undefined) return;
    clearInterval(waitInFlight);
    client.destroy();
    if (mitigate) client.repository.on('error', () => {});
    release();
    setTimeout(() => { console.log('survived'); server.close(); process.exit(0); }, 300);
  }, 5);
});
`;

t.test('destroy() racing an in-flight fetch that then fails', async (t) => {
  const backupPath = mkdtempSync(join(tmpdir(), 'ficus-unleash-race-'));
  t.teardown(() => rmSync(backupPath, { recursive: true, force: true }));
  const race = (mode: string): ReturnType<typeof spawnSync> =>
    spawnSync(process.execPath, ['--input-type=module', '-e', RACE_SCRIPT, mode, backupPath], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: SYNC_TIMEOUT_MS,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    });
  const plain = race('plain');
  t.not(plain.status, 0, 'the bare client crashes the process');
  t.match(String(plain.stderr), /Emitted 'error' event on Repository instance/, 'from an unhandled repository error');
  const mitigated = race('mitigate');
  t.equal(mitigated.status, 0, `a no-op 'error' listener re-attached to the repository after destroy() prevents it ${String(mitigated.stderr).slice(0, 300)}`);
  t.match(String(mitigated.stdout), /survived/);
});
