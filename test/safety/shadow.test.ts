// Shadow traffic (README "Shadow traffic"): a school in shadow gets legacy's bytes unchanged,
// and afterwards the new handler answers the same GET in the background; the comparison is
// counted per route and school, shown in /metrics and, with its diff, at /shadow/mismatches.
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { migratedRoute, type MigratedRoute } from '../../core/route.ts'
import { flagsFor, startSafetyKit, waitFor, type SafetyKit } from '../helpers/safety-kit.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'
import type { LegacyHandler } from '../helpers/recording-legacy.ts'

const ROUTE = 'report.json'
const FLAG = 'report'
const WAIT_MS = 5_000

interface Report {
  school: string
  generatedAt: string
  total: number
  classes: Array<{ id: string, present: number }>
}

function legacyReport (school: string): Report {
  return { school, generatedAt: new Date(Date.now() - 1_000).toISOString(), total: 30, classes: [{ id: '3a', present: 14 }, { id: '3b', present: 16 }] }
}

/** The legacy report, as a Zope page would print it: its own key order and spacing. */
const legacyHandler: LegacyHandler = async ({ req, res, record }) => {
  await record.ended
  const school = (req.headers.host ?? '').split('.')[0] ?? ''
  if (req.url?.startsWith('/report') !== true) {
    res.writeHead(200, { 'content-type': 'text/plain' })
    return void res.end('legacy')
  }
  const body = JSON.stringify(legacyReport(school), null, 2)
  res.writeHead(200, { 'content-type': 'application/json', 'x-legacy-header': 'kept' })
  res.end(body)
}

interface Calls { GET: number, HEAD: number, POST: number }

/** The migrated report: right for every school but school-b, whose total is off by one. */
function reportRoute (calls: Calls, shadow?: MigratedRoute['shadow'], gate?: () => Promise<void>): MigratedRoute {
  return migratedRoute({
    name: ROUTE,
    method: ['GET', 'POST'],
    url: '/report',
    flag: FLAG,
    access: 'public',
    // The safety nets are under test here, not who may call: no sign-in, no CSRF token.
    csrf: false,
    ...(shadow === undefined ? {} : { shadow }),
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      calls[request.method as keyof Calls]++
      if (gate !== undefined) await gate()
      const school = request.tenant.id
      const report = legacyReport(school)
      return reply.send({
        classes: [...report.classes].reverse(),
        total: school === 'school-b' ? 31 : 30,
        school,
        generatedAt: new Date().toISOString()
      })
    }
  })
}

async function shadowKit (t: Test, route: MigratedRoute, env: Record<string, string> = {}): Promise<SafetyKit> {
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ [FLAG]: [], [`${FLAG}-shadow`]: ['school-a', 'school-b'] }), env })
  kit.legacy.handle(legacyHandler)
  return kit
}

interface ShadowSummary {
  readonly schools: Record<string, { match: number, mismatch: number, error: number }>
  readonly totals: { match: number, mismatch: number, error: number }
  readonly dropped: Record<string, number>
}

async function shadowTotals (kit: SafetyKit): Promise<ShadowSummary> {
  const answer = await kit.admin(`/shadow?route=${ROUTE}`)
  return (JSON.parse(answer.text) as { routes: ShadowSummary[] }).routes[0] as ShadowSummary
}

async function waitForComparisons (kit: SafetyKit, count: number): Promise<void> {
  let seen = 0
  await waitFor(() => {
    const totals = kit.safety.guards[0]?.shadow.totals
    seen = totals === undefined ? 0 : totals.match + totals.mismatch + totals.error
    return seen >= count
  }, WAIT_MS, `${count} shadow comparisons (have ${seen})`)
}

t.test('school-b in shadow gets legacy bytes; the one differing field is shown with its diff', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await shadowKit(t, reportRoute(calls, { ignore: ['generatedAt'], unordered: ['classes'] }))

  const answer = await kit.request('school-b', '/report')
  t.equal(answer.status, 200)
  t.equal(answer.headers['x-served-by'], 'legacy')
  t.equal(answer.headers['x-legacy-header'], 'kept')
  const sent = kit.legacy.requests.length
  t.equal(sent, 1, 'legacy answered the user')
  // Byte for byte what legacy sent: its own key order and indentation.
  t.match(answer.text, /^\{\n {2}"school": "school-b",\n {2}"generatedAt": /)
  t.same(JSON.parse(answer.text), { ...legacyReport('school-b'), generatedAt: (JSON.parse(answer.text) as Report).generatedAt })

  await kit.request('school-a', '/report')
  await waitForComparisons(kit, 2)
  t.equal(kit.legacy.requests.length, 2, 'the shadow runs never reach legacy')
  t.equal(calls.GET, 2, 'the new handler ran once per user request, in the background')

  const totals = await shadowTotals(kit)
  t.same(totals.schools, { 'school-b': { match: 0, mismatch: 1, error: 0 }, 'school-a': { match: 1, mismatch: 0, error: 0 } })

  const listing = JSON.parse((await kit.admin(`/shadow/mismatches?route=${ROUTE}`)).text) as { routes: Array<{ route: string, mismatches: Array<{ tenant: string, diff: string, path: string, legacyStatus: number, newStatus: number }> }> }
  const mismatches = listing.routes[0]?.mismatches ?? []
  t.equal(mismatches.length, 1)
  t.match(mismatches[0], { tenant: 'school-b', path: '/report', legacyStatus: 200, newStatus: 200, diff: '$.total: legacy 30, new 31' })
  t.comment(`admin mismatch listing: ${JSON.stringify(mismatches[0])}`)

  const metrics = parsePrometheusText(await kit.metrics.text())
  t.equal(sampleValue(metrics, 'ficus_shadow_comparisons_total', { route: ROUTE, outcome: 'mismatch', cohort: 'none' }), 1, 'school-b (no cohort) mismatch')
  t.equal(sampleValue(metrics, 'ficus_shadow_comparisons_total', { route: ROUTE, outcome: 'match', cohort: 'pilot' }), 1, 'school-a (pilot) match')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: ROUTE, backend: 'shadow', status_class: '2xx' }) !== undefined, true, 'shadow replays are counted as their own backend')
  t.equal(sampleValue(metrics, 'ficus_requests_total', { route: ROUTE, backend: 'legacy', status_class: '2xx', cohort: 'none' }), 1)
})

t.test('with the differing field ignored, the route reports only matches', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await shadowKit(t, reportRoute(calls, { ignore: ['generatedAt', 'total'], unordered: ['classes'] }))
  for (const school of ['school-a', 'school-b', 'school-b']) t.equal((await kit.request(school, '/report')).headers['x-served-by'], 'legacy')
  await waitForComparisons(kit, 3)
  const totals = await shadowTotals(kit)
  t.same(totals.totals, { match: 3, mismatch: 0, error: 0 })
  const listing = JSON.parse((await kit.admin('/shadow/mismatches')).text) as { routes: Array<{ mismatches: unknown[] }> }
  t.same(listing.routes[0]?.mismatches, [])
  const metrics = parsePrometheusText(await kit.metrics.text())
  t.equal(sampleValue(metrics, 'ficus_shadow_comparisons_total', { route: ROUTE, outcome: 'mismatch' }), undefined)
})

t.test('a POST is never shadowed', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await shadowKit(t, reportRoute(calls, { ignore: ['generatedAt'], unordered: ['classes'] }))
  const post = await kit.request('school-b', '/report', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"note":"once"}' })
  t.equal(post.headers['x-served-by'], 'legacy')
  // A GET after it: its shadow run starting proves the runner has had its chance at the POST.
  await kit.request('school-b', '/report')
  await waitForComparisons(kit, 1)
  t.equal(calls.POST, 0, 'the new handler never saw the POST')
  t.equal(calls.GET, 1)
  t.equal(kit.legacy.requests.filter((r) => r.method === 'POST').length, 1, 'legacy got the POST once')
  const totals = await shadowTotals(kit)
  t.same(totals.schools, { 'school-b': { match: 0, mismatch: 1, error: 0 } }, 'only the GET was compared')
})

t.test('HEAD is shadowed too, comparing status', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await shadowKit(t, reportRoute(calls, { ignore: ['generatedAt'], unordered: ['classes'] }))
  const head = await kit.request('school-a', '/report', { method: 'HEAD' })
  t.equal(head.status, 200)
  await waitForComparisons(kit, 1)
  t.same((await shadowTotals(kit)).totals, { match: 1, mismatch: 0, error: 0 })
})

t.test('shadow work is capped: while the slot is taken, more is dropped and counted, and users are not held up', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  const kit = await shadowKit(t, reportRoute(calls, { ignore: ['generatedAt'], unordered: ['classes'] }, () => held), { SHADOW_CONCURRENCY: '1' })
  await kit.request('school-a', '/report')
  await waitFor(() => calls.GET === 1, WAIT_MS, 'the first shadow run to start')
  for (let i = 0; i < 3; i++) t.equal((await kit.request('school-a', '/report')).status, 200, 'answered while the shadow slot is busy')
  const dropped = (await shadowTotals(kit)).dropped
  t.equal(dropped.busy, 3)
  const metrics = parsePrometheusText(await kit.metrics.text())
  t.equal(sampleValue(metrics, 'ficus_shadow_dropped_total', { route: ROUTE, reason: 'busy' }), 3)
  release()
  await waitForComparisons(kit, 1)
  t.equal(calls.GET, 1, 'dropped work never ran')
})

t.test('a legacy body over the size cap reaches the user intact and is not compared', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await shadowKit(t, reportRoute(calls), { SHADOW_MAX_BODY_BYTES: '1024' })
  const big = Buffer.alloc(256 * 1024, 'x')
  kit.legacy.handle(({ res }) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    // In pieces, as a real page streams.
    for (let i = 0; i < big.length; i += 16 * 1024) res.write(big.subarray(i, i + 16 * 1024))
    res.end()
  })
  const answer = await kit.request('school-a', '/report')
  t.ok(answer.body.equals(big), 'all 256 KiB, unchanged')
  await waitFor(() => (kit.safety.guards[0]?.shadow.dropped.too_large ?? 0) === 1, WAIT_MS, 'the too_large drop')
  t.equal(calls.GET, 0, 'nothing to compare with, so the new handler is not run')
})

t.test('a school not in shadow costs nothing extra', async (t) => {
  const calls: Calls = { GET: 0, HEAD: 0, POST: 0 }
  const kit = await startSafetyKit(t, { routes: [reportRoute(calls)], flags: flagsFor({ [FLAG]: [], [`${FLAG}-shadow`]: ['school-a'] }) })
  kit.legacy.handle(legacyHandler)
  await kit.request('school-b', '/report')
  await kit.request('school-a', '/report')
  await waitForComparisons(kit, 1)
  t.same((await shadowTotals(kit)).schools, { 'school-a': { match: 0, mismatch: 1, error: 0 } }, 'school-a compared (generatedAt differs), school-b not at all')
  t.equal(calls.GET, 1)
})

t.test('no header makes a client request a shadow replay: it is served by legacy, and replays carry no marker', async (t) => {
  const seen: Array<Record<string, unknown>> = []
  const route = migratedRoute({
    name: ROUTE,
    method: 'GET',
    url: '/report',
    flag: FLAG,
    access: 'public',
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      seen.push({ ...request.headers })
      return reply.send(legacyReport(request.tenant.id))
    }
  })
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ [FLAG]: [], [`${FLAG}-shadow`]: ['school-a'] }) })
  kit.legacy.handle(legacyHandler)

  // The header that once marked ficus's own requests, and spellings a client might try.
  const answer = await kit.request('school-b', '/report', { headers: { 'x-ficus-internal': 'shadow', 'x-ficus-shadow': '1', 'x-ficus-replay': 'true' } })
  t.equal(answer.status, 200)
  t.equal(answer.headers['x-served-by'], 'legacy', 'the flag decided, not the headers')
  t.equal(kit.legacy.requests.length, 1)
  t.equal(seen.length, 0, 'the new handler did not run for a school not in shadow')

  await kit.request('school-a', '/report')
  await waitForComparisons(kit, 1)
  t.equal(seen.length, 1, 'the replay ran the new handler')
  t.same(Object.keys(seen[0] ?? {}).filter((name) => name.startsWith('x-ficus')), [], 'the replay carries no marker header')
  t.equal(kit.legacy.requests.length, 2, 'the replay never reached legacy')
})
