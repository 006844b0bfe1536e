// The cap on open pools: least recently used idle one closed to make room, callers waiting (for a
// bounded time) when every one is busy, and a pool being closed still counting against the cap.
import t from 'tap'
import { BoundedLru } from '../../tenant-db/bounded-lru.ts'

interface Resource { readonly key: string, readonly version: string }

function lru (max: number, options: { closeDelayMs?: number } = {}) {
  const opened: string[] = []
  const closed: string[] = []
  const cache = new BoundedLru<Resource>({
    max,
    closeTimeoutMs: 1_000,
    open: (key, version) => { opened.push(key); return { key, version } },
    close: async (resource) => {
      await new Promise((resolve) => setTimeout(resolve, options.closeDelayMs ?? 0))
      closed.push(resource.key)
    }
  })
  return { cache, opened, closed }
}

t.test('opens lazily, reuses, and closes the least recently used idle one at the cap', async (t) => {
  const { cache, opened, closed } = lru(2)
  for (const key of ['a', 'b', 'a', 'c']) cache.release(await cache.acquire(key, 'v1', 100))
  t.same(opened, ['a', 'b', 'c'])
  t.same(closed, ['b'], 'b was least recently used: a was used again after it')
  t.equal(cache.open, 2)
})

t.test('every one busy: the caller waits, and gets the slot when one goes idle', async (t) => {
  const { cache, closed } = lru(1)
  const a = await cache.acquire('a', 'v1', 100)
  const waiting = cache.acquire('b', 'v1', 5_000)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(cache.waiting, 1)
  cache.release(a)
  const b = await waiting
  t.equal(b.key, 'b')
  t.same(closed, ['a'])
  cache.release(b)
})

t.test('every one busy for longer than the wait: a 503 busy error', async (t) => {
  const { cache } = lru(1)
  const a = await cache.acquire('a', 'v1', 100)
  await t.rejects(cache.acquire('b', 'v1', 50), { code: 'FICUS_ERR_TENANT_DB_BUSY', statusCode: 503 })
  t.equal(cache.waiting, 0)
  cache.release(a)
})

t.test('a pool being closed still counts against the cap until it has closed', async (t) => {
  const { cache, closed } = lru(1, { closeDelayMs: 100 })
  cache.release(await cache.acquire('a', 'v1', 100))
  const b = cache.acquire('b', 'v1', 5_000)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same({ open: cache.open, closing: cache.closing }, { open: 0, closing: 1 }, 'b waits for a to finish closing')
  const lease = await b
  t.same(closed, ['a'])
  cache.release(lease)
})

t.test('a new version (the school moved database) replaces the old pool once its leases end', async (t) => {
  const { cache, opened, closed } = lru(2)
  const old = await cache.acquire('a', 'v1', 100)
  const fresh = await cache.acquire('a', 'v2', 100)
  t.not(fresh, old)
  t.same(opened, ['a', 'a'])
  t.same(closed, [], 'the old one is still in use')
  cache.release(old)
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(closed, ['a'])
  cache.release(fresh)
})

t.test('close closes everything, waits for leases, and refuses new ones', async (t) => {
  const { cache, closed } = lru(3)
  cache.release(await cache.acquire('a', 'v1', 100))
  const busy = await cache.acquire('b', 'v1', 100)
  const closing = cache.close()
  await t.rejects(cache.acquire('c', 'v1', 100), { code: 'FICUS_ERR_TENANT_DB_CLOSED' })
  cache.release(busy)
  await closing
  t.same(closed.sort(), ['a', 'b'])
  t.same({ open: cache.open, closing: cache.closing }, { open: 0, closing: 0 })
})

t.test('close() gives up after closeTimeoutMs on a lease that is never released', async (t) => {
  const { cache, closed } = lru(2)
  cache.release(await cache.acquire('idle', 'v1', 100))
  await cache.acquire('held', 'v1', 100)
  const started = performance.now()
  await cache.close()
  const ms = performance.now() - started
  t.ok(ms >= 900, `waited for the lease up to the deadline (${Math.round(ms)} ms)`)
  t.same(closed, ['idle'], 'the idle one was closed; the held one is left to the process')
  await t.rejects(cache.acquire('idle', 'v1', 100), { code: 'FICUS_ERR_TENANT_DB_CLOSED' }, 'no new leases')
})
