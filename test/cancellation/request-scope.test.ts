// The request's cancellation scope, and the calls that honour it without being handed it: a
// transaction on real PostgreSQL (slowed by a delaying proxy so that the signal can land while
// COMMIT is on its way) and the Redis session store.
import t from 'tap'
import { Client } from 'pg'
import { Redis } from 'ioredis'
import { currentScope, RequestScope } from '../../cancellation/request-scope.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { inPgTransaction } from '../../tenant-db/pg-transaction.ts'
import { startDelayingProxy } from '../helpers/delaying-proxy.ts'
import { createSchoolDatabases, testDatabasePrefix, withAdmin } from '../helpers/tenant-databases.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const PREFIX = testDatabasePrefix('ficus_scope')
const CANCELLED = { code: 'FICUS_ERR_REQUEST_CANCELLED' }

t.test('a scope: found by the calls its handler makes, its signal fired once with the reason', async (t) => {
  const scope = new RequestScope('req-1')
  t.equal(currentScope(), undefined, 'no scope outside a handler')
  let release = (): void => {}
  const handler = scope.run(async () => {
    await new Promise<void>((resolve) => { release = resolve })
    return currentScope()
  })
  t.ok(scope.running)
  t.ok(scope.cancel('client'), 'cancelled while running')
  t.notOk(scope.cancel('shutdown'), 'a second reason does not replace the first')
  t.equal(scope.reason, 'client')
  t.match(scope.signal.reason, { code: 'FICUS_ERR_REQUEST_CANCELLED', statusCode: 503 })
  release()
  t.equal(await handler, scope, 'the scope survives awaits inside the handler')
  await scope.settled
  t.notOk(scope.running)
  const idle = new RequestScope('req-2')
  t.notOk(idle.cancel('deadline'), 'nothing was running: not a cancellation of work')
})

t.test('a transaction on PostgreSQL', async (t) => {
  const [school] = await createSchoolDatabases(t, PREFIX, 1, { migrated: false })
  if (school === undefined) throw new Error('one school was created')
  await withAdmin((c) => c.query('CREATE TABLE written (name text)'), school.url)
  const slow = await startDelayingProxy(t, { host: '127.0.0.1', port: 5432 })
  const markers = async (): Promise<string[]> => withAdmin(async (c) => (await c.query<{ name: string }>('SELECT name FROM written')).rows.map((r) => r.name), school.url)
  const connected = async (): Promise<Client> => {
    const client = new Client({ connectionString: `postgres://postgres@127.0.0.1:${slow.port}/${school.database}` })
    client.on('error', () => {})
    await client.connect()
    t.teardown(() => client.end().catch(() => {}))
    return client
  }

  t.test('cancelled before COMMIT: rolled back, the connection given up', async (t) => {
    const client = await connected()
    const controller = new AbortController()
    let broken: Error | undefined
    await t.rejects(inPgTransaction(client, 'test', 'BEGIN', async (tx) => {
      await tx.query("INSERT INTO written (name) VALUES ('before-commit')")
      controller.abort(new RequestScope('x').signal.reason)
    }, (error) => { broken = error }, { signal: controller.signal }), CANCELLED)
    t.ok(broken instanceof Error, 'the connection is not handed back as usable')
    t.notOk((await markers()).includes('before-commit'), 'nothing was committed')
  })

  t.test('cancelled while COMMIT is on its way: committed, and reported', async (t) => {
    const client = await connected()
    slow.delayMs = 300
    const controller = new AbortController()
    let reported = 0
    await inPgTransaction(client, 'test', 'BEGIN', async (tx) => {
      await tx.query("INSERT INTO written (name) VALUES ('during-commit')")
      // COMMIT leaves at once; its answer takes two delays.
      setTimeout(() => controller.abort(), 100)
    }, () => {}, { signal: controller.signal, onCommittedDespiteCancel: () => reported++ })
    slow.delayMs = 0
    t.equal(reported, 1, 'the commit after the signal is reported')
    t.ok((await markers()).includes('during-commit'), 'the write is there, as reported')
  })
})

t.test('the Redis session store sends nothing for a cancelled request', async (t) => {
  const prefix = `ficus-scope-test:${process.pid}:`
  const raw = new Redis(REDIS_URL)
  const store = new RedisSessionStore({ url: REDIS_URL, keyPrefix: prefix })
  t.teardown(async () => {
    await raw.del(`${prefix}s1`)
    raw.disconnect()
    await store.close()
  })
  await raw.set(`${prefix}s1`, 'before')
  const scope = new RequestScope('req-3')
  await scope.run(async () => {
    t.equal((await store.get('s1'))?.toString(), 'before', 'read while the signal has not fired')
    scope.cancel('client')
    await t.rejects(store.get('s1'), CANCELLED, 'a read after it fired is refused')
    await t.rejects(store.compareAndSet('s1', Buffer.from('before'), Buffer.from('after')), CANCELLED, 'so is a write')
  })
  t.equal(await raw.get(`${prefix}s1`), 'before', 'the record is unchanged')
})
