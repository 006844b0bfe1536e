// No lost updates: 200 writes of distinct keys to one session, half from ficus (compare-and-set)
// and half from the Flask side, lose none of ficus's keys, and the record keeps its TTL.
// Once through the real Flask app, with a Flask write landing between every ficus read and write;
// once against a concurrent redis-py writer, with plain and with signed ids.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { flaskSessionCodec } from '../../sessions/codecs.ts'
import { RedisSessionStore } from '../../sessions/redis-store.ts'
import { RequestSession } from '../../sessions/session.ts'
import type { SessionRuntime } from '../../sessions/session.ts'
import { ItsdangerousSigner } from '../../sessions/signer.ts'
import { FLASK_FIXTURE_DIR, SYSTEM_PYTHON, startFlaskApp, stopProcess } from '../helpers/flask-app.ts'
import type { Teardown } from '../helpers/flask-app.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
const SECRET = 'no-lost-updates-secret'
const LIFETIME_SECONDS = 1200
const WRITES_PER_SIDE = 100
const SCHOOL = 'school-a'
/** Generous: the concurrent writer can win many rounds in a row on a busy machine. */
const CONCURRENT_WRITE_RETRIES = 1000

interface Setup {
  redis: Redis
  runtime: SessionRuntime
  flask: Awaited<ReturnType<typeof startFlaskApp>>
  cookie: string
  key: string
}

async function setUp (t: Teardown, signed: boolean, writeRetries: number): Promise<Setup> {
  const keyPrefix = `ficus-test:cas:${randomUUID()}:`
  const redis = new Redis(REDIS_URL)
  t.teardown(async () => {
    const keys = await redis.keys(keyPrefix + '*')
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const store = new RedisSessionStore({ url: REDIS_URL, keyPrefix })
  t.teardown(() => store.close())
  await store.ready()
  const flask = await startFlaskApp(t, { redisUrl: REDIS_URL, keyPrefix, useSigner: signed, secret: SECRET, lifetimeSeconds: LIFETIME_SECONDS })
  const login = await flask.get('/login?user=alice', { host: `${SCHOOL}.example.org` })
  const cookie = login.setCookies.find((c) => c.startsWith('session='))
  if (cookie === undefined) throw new Error('Flask set no session cookie')
  const id = cookie.slice('session='.length).split('.')[0] ?? ''
  const runtime: SessionRuntime = {
    store,
    codec: flaskSessionCodec,
    signer: signed ? new ItsdangerousSigner({ secret: SECRET }) : undefined,
    cookieName: 'session',
    tenantKey: 'tenant',
    writeRetries
  }
  return { redis, runtime, flask, cookie, key: keyPrefix + id }
}

async function ficusWrite (setup: Setup, key: string, value: number, between?: () => Promise<unknown>): Promise<number> {
  const session = await new RequestSession(setup.runtime, setup.cookie, SCHOOL).load()
  if (session === null) throw new Error('ficus sees no session')
  if (between !== undefined) await between()
  session.set(key, value)
  await session.save()
  if (session.ended) throw new Error('session ended while saving')
  return session.writeAttempts
}

for (const signed of [false, true]) {
  const variant = signed ? 'signed ids' : 'plain ids'

  t.test(`${variant}: a Flask write between every ficus read and write loses nothing`, async (t) => {
    const setup = await setUp(t, signed, 8)
    let conflicts = 0
    for (let i = 0; i < WRITES_PER_SIDE; i++) {
      const attempts = await ficusWrite(setup, `ficus_${i}`, i, async () => {
        const res = await setup.flask.get(`/set?key=flask_${i}&value=${i}`, { host: `${SCHOOL}.example.org`, cookie: setup.cookie })
        if (res.status !== 200) throw new Error(`Flask answered ${res.status}`)
      })
      if (attempts > 1) conflicts++
    }
    t.equal(conflicts, WRITES_PER_SIDE, 'every ficus write met a Flask write and retried')
    const page = await setup.flask.get('/session', { host: `${SCHOOL}.example.org`, cookie: setup.cookie })
    const data = page.body.session as Record<string, unknown>
    const lost = []
    for (let i = 0; i < WRITES_PER_SIDE; i++) {
      if (data[`ficus_${i}`] !== i) lost.push(`ficus_${i}`)
      if (data[`flask_${i}`] !== String(i)) lost.push(`flask_${i}`)
    }
    t.same(lost, [], 'all 200 keys are there, as Flask reads them')
    t.equal(data.user, 'alice')
    const ttl = await setup.redis.pttl(setup.key)
    t.ok(ttl > 0 && ttl <= LIFETIME_SECONDS * 1000, `TTL survives (${ttl} ms)`)
  })

  t.test(`${variant}: concurrent writes from redis-py and ficus lose nothing`, async (t) => {
    const setup = await setUp(t, signed, CONCURRENT_WRITE_RETRIES)
    const ttlBefore = await setup.redis.pttl(setup.key)
    const writer = spawn(SYSTEM_PYTHON, [FLASK_FIXTURE_DIR + 'concurrent_writer.py', REDIS_URL, setup.key, String(WRITES_PER_SIDE), 'py_'],
      { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => stopProcess(writer))
    let output = ''
    let errors = ''
    writer.stderr.setEncoding('utf8').on('data', (chunk: string) => { errors += chunk })
    const exited = new Promise<number | null>((resolve) => writer.once('exit', resolve))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('writer not ready: ' + errors)), 15_000)
      writer.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
        if (output.includes('READY')) { clearTimeout(timer); resolve() }
      })
      writer.once('exit', () => { clearTimeout(timer); reject(new Error('writer exited: ' + errors)) })
    })

    let ficusRetries = 0
    for (let i = 0; i < WRITES_PER_SIDE; i++) {
      ficusRetries += (await ficusWrite(setup, `ficus_${i}`, i)) - 1
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2))
    }
    const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000).unref())])
    t.equal(code, 0, 'the Python writer finished: ' + errors)
    const pythonRetries = Number(output.replace('READY', '').trim())
    t.comment(`retries: ficus ${ficusRetries}, python ${pythonRetries}`)

    const data = flaskSessionCodec.decode((await setup.redis.getBuffer(setup.key)) ?? Buffer.alloc(0))
    const lost = []
    for (let i = 0; i < WRITES_PER_SIDE; i++) {
      if (data[`ficus_${i}`] !== i) lost.push(`ficus_${i}`)
      if (data[`py_${i}`] !== i) lost.push(`py_${i}`)
    }
    t.same(lost, [], 'all 200 keys are there')
    t.equal(data.user, 'alice')
    const ttl = await setup.redis.pttl(setup.key)
    t.ok(ttl > 0 && ttl <= ttlBefore, `TTL survives (${ttlBefore} → ${ttl} ms)`)
    const page = await setup.flask.get('/session', { host: `${SCHOOL}.example.org`, cookie: setup.cookie })
    t.equal(page.body.session.ficus_99, 99, 'and Flask reads the record')
  })
}
