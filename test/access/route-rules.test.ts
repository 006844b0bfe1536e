// Every declared migrated route has an access rule in force (its own or the default), the edge
// enforces it on every route and on shadow runs, /decisions shows it, and no route handler reads
// the session's sign-in keys itself: request.user is the only way to know who is calling.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import type { FastifyReply, FastifyRequest } from 'fastify'
import t from 'tap'
import { ACCESS_DEFAULTS } from '../../access/config.ts'
import { describeAccess, effectiveAccess, permits, ruleProblem } from '../../access/rules.ts'
import type { SignedInUser } from '../../core/access-rule.ts'
import { migratedRoutes } from '../../new-routes/index.ts'
import { migratedRoute } from '../../core/route.ts'
import { decisionsFor } from '../../proxy/decisions.ts'
import { Flags } from '../../flags/flags.ts'
import { PROJECT_ROOT, startProxy } from '../helpers/proxy-kit.ts'
import { flagsFor, startSafetyKit, waitFor } from '../helpers/safety-kit.ts'
import { FileTenantRegistry } from '../../tenants/file-registry.ts'

const allFlagsOn = {
  version: 2,
  features: [...new Set(migratedRoutes.map((route) => route.flag))].map((name) => ({ name, enabled: true, strategies: [{ name: 'default', parameters: {}, constraints: [] }] }))
}

/** A concrete URL of a route pattern: every `:param` filled in. */
const concrete = (url: string): string => url.replace(/:[A-Za-z]+/g, '7B')

t.test('every declared migrated route has an effective access rule, and a well-formed one', async (t) => {
  t.ok(migratedRoutes.length > 0)
  for (const route of migratedRoutes) {
    const rule = effectiveAccess(route)
    t.ok(rule !== undefined, `${route.name}: ${describeAccess(rule)}`)
    t.equal(ruleProblem(route.access), undefined, `${route.name}: the rule is well formed`)
  }
  t.equal(effectiveAccess({}), 'signed-in', 'a route that says nothing is for signed-in users')
})

t.test('the edge enforces each route\'s rule: anonymous calls never reach a handler that is not public', async (t) => {
  const proxy = await startProxy(t, { routes: migratedRoutes, flags: allFlagsOn, withSessions: true })
  for (const route of migratedRoutes) {
    const declared: string[] = Array.isArray(route.method) ? [...route.method] : [route.method as string]
    // fastify adds HEAD to every GET route: it must be held to the same rule.
    const methods = declared.includes('GET') ? [...declared, 'HEAD'] : declared
    for (const method of methods) {
      const answer = await proxy.send({ method, path: concrete(route.url), headers: { accept: 'application/json', 'content-type': 'application/json', origin: 'http://school-a.localhost' }, ...(method === 'GET' || method === 'HEAD' ? {} : { body: '{}' }) })
      t.equal(answer.header('x-served-by'), 'new', `${method} ${route.url} is on the new side`)
      if (effectiveAccess(route) === 'public' && (method === 'GET' || method === 'HEAD')) t.equal(answer.statusCode, 200, `${method} ${route.name} is public`)
      else t.match(answer.statusCode, /^(401|403)$/, `${method} ${route.name} (${describeAccess(effectiveAccess(route))}) refuses an anonymous call: ${answer.statusCode}`)
    }
  }
  t.equal(proxy.legacy.requests.length, 0, 'and none of it went to legacy')
  const page = await proxy.send({ method: 'HEAD', path: '/attendance', headers: { accept: 'text/html' } })
  t.equal(page.statusCode, 302, 'a browser\'s HEAD of a page is sent to sign in too')
  t.equal(page.header('location'), '/login?next=%2Fattendance')
})

t.test('a route declared with a rule that cannot be decided stops the edge from starting', async (t) => {
  const bad = migratedRoute({ name: 'bad.rule', method: 'GET', url: '/bad', flag: 'bad', access: {} as never, handler: async () => ({}) })
  await t.rejects(startProxy(t, { routes: [bad] }), /bad\.rule: access \{ \} names neither roles nor a predicate/)
})

t.test('rules: roles, predicates, public', async (t) => {
  const teacher: SignedInUser = { id: 't1', roles: ['teacher'], school: 'school-a', fresh: true }
  const clerk: SignedInUser = { id: 'o1', roles: ['office'], school: 'school-a', fresh: false }
  t.equal(permits('public', null), true)
  t.equal(permits('signed-in', null), false)
  t.equal(permits('signed-in', clerk), true)
  t.equal(permits({ roles: ['teacher'] }, teacher), true)
  t.equal(permits({ roles: ['teacher'] }, clerk), false)
  t.equal(permits((user) => user.fresh, clerk), false, 'a predicate decides')
  t.equal(permits({ roles: ['teacher', 'office'], allow: (user) => user.fresh, describe: 'a fresh sign-in' }, clerk), false, 'roles and predicate both must hold')
  t.equal(describeAccess({ roles: ['teacher', 'office'], allow: (user) => user.fresh, describe: 'a fresh sign-in' }), 'roles: teacher, office; a fresh sign-in')
})

t.test('/decisions lists each route\'s access rule', async (t) => {
  const proxy = await startProxy(t, { routes: migratedRoutes, flags: allFlagsOn })
  const flags = await Flags.fromFile(proxy.flagsFile, proxy.app.log, 100)
  t.teardown(() => flags.close())
  const decisions = decisionsFor('school-a', { registry: proxy.registry as FileTenantRegistry, flags, routes: migratedRoutes, killSwitchFlag: undefined })
  const byRoute = Object.fromEntries((decisions?.routes ?? []).map((route) => [route.route, { access: route.access, csrf: route.csrf }]))
  t.same(byRoute, {
    'attendance.page': { access: 'roles: teacher', csrf: true },
    'timetable.page': { access: 'public', csrf: true },
    'me.show': { access: 'signed-in', csrf: true },
    'me.preferences': { access: 'signed-in', csrf: true },
    'attendance.register.read': { access: 'roles: teacher', csrf: true },
    'attendance.register.mark': { access: 'roles: teacher', csrf: true }
  })
})

t.test('shadow runs are held to the rule too: the handler never runs for an anonymous replay', async (t) => {
  let calls = 0
  const route = migratedRoute({
    name: 'grades.page',
    method: 'GET',
    url: '/grades',
    flag: 'grades',
    access: { roles: ['teacher'] },
    handler: async (_request: FastifyRequest, reply: FastifyReply) => { calls++; return reply.send({ grades: [] }) }
  })
  const kit = await startSafetyKit(t, { routes: [route], flags: flagsFor({ grades: [], 'grades-shadow': ['school-a'] }) })
  const answer = await kit.request('school-a', '/grades', { headers: { accept: 'application/json' } })
  t.equal(answer.headers['x-served-by'], 'legacy', 'the user gets legacy')
  await waitFor(() => (kit.safety.guards[0]?.shadow.totals.mismatch ?? 0) >= 1, 5_000, 'the shadow comparison')
  t.equal(calls, 0, 'the handler did not run')
  t.match(kit.safety.guards[0]?.shadow.mismatches()[0], { newStatus: 401 }, 'the shadow run was refused like a real one')
})

// Sign-in keys of every preset, and the CSRF key: reading them is the access stage's job.
const AUTH_KEYS = ['user', '_user_id', '_fresh', 'roles', ACCESS_DEFAULTS.CSRF_SESSION_KEY, 'tenant']
const SESSION_READ = new RegExp(`\\.(?:get|getString|has)\\(\\s*['"\`](?:${AUTH_KEYS.join('|')})['"\`]`)
const COOKIE_READ = /headers\.cookie|sessionIdFromCookie|userFromSession|SESSION_USER_KEY/

function authReads (source: string): string[] {
  return source.split('\n').filter((line) => SESSION_READ.test(line) || COOKIE_READ.test(line))
}

function sourcesUnder (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sourcesUnder(path) : path.endsWith('.ts') ? [path] : []
  })
}

t.test('no route handler reads the session\'s sign-in keys (or the cookie) itself', async (t) => {
  t.same(authReads("const user = (await request.session.load())?.getString('_user_id')"), ["const user = (await request.session.load())?.getString('_user_id')"], 'the scan sees a handler doing it')
  t.same(authReads('if (!session.has("roles")) return reply.code(401)'), ['if (!session.has("roles")) return reply.code(401)'])
  t.same(authReads("session.get('preferences')"), [], 'other keys are the handler\'s business')
  const files = sourcesUnder(join(PROJECT_ROOT, 'new-routes'))
  t.ok(files.length >= 5, `${files.length} files scanned`)
  for (const file of files) t.same(authReads(readFileSync(file, 'utf8')), [], relative(PROJECT_ROOT, file))
})
