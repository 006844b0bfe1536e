// Shadow replays are ficus's own traffic: the access log holds the users' requests only, while
// the replays still run and are counted as their own backend in /metrics.
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { migratedRoute } from '../../core/route.ts'
import { flagsFor, startSafetyKit, waitFor } from '../helpers/safety-kit.ts'
import { signedInSessions } from '../helpers/signed-in.ts'

const WAIT_MS = 5_000

t.test('a school in shadow: one access line per user request, none for the replay', async (t) => {
  let replays = 0
  const replayUsers: unknown[] = []
  const route = migratedRoute({
    name: 'report.page',
    method: 'GET',
    url: '/report',
    flag: 'report',
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      replays++
      replayUsers.push(request.user?.id)
      return reply.type('text/plain').send('legacy GET /report')
    }
  })
  // The route is for signed-in users (the default), so the users are, and so is each replay of theirs.
  const users = await signedInSessions(t, ['school-a'])
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ report: [], 'report-shadow': ['school-a'] }), env: users.env, withSessions: true })
  const headers = { cookie: users.cookie('school-a') }
  for (let i = 0; i < 3; i++) t.equal((await kit.request('school-a', '/report', { headers })).headers['x-served-by'], 'legacy')
  await waitFor(() => (kit.safety.guards[0]?.shadow.totals.match ?? 0) === 3, WAIT_MS, 'three shadow comparisons')
  t.equal(replays, 3, 'the new handler ran in the background for each')
  t.same(replayUsers, ['teacher-of-school-a', 'teacher-of-school-a', 'teacher-of-school-a'], 'each replay as the signed-in user it replays')
  const lines = kit.logs.filter((line) => line.msg === 'request')
  t.equal(lines.length, 3, 'three access lines: the users\' requests')
  t.ok(lines.every((line) => line.backend === 'legacy'), 'each the legacy answer the user got')
})
