import t from 'tap'
import { HostResolver } from '../../tenants/host.ts'

const resolver = new HostResolver('localhost')

t.test('a sub-domain of the base domain names the school', async (t) => {
  t.same(resolver.resolve('school-a.localhost:8080'), { kind: 'tenant', tenantId: 'school-a' })
  t.same(resolver.resolve('school-a.localhost'), { kind: 'tenant', tenantId: 'school-a' })
  t.same(new HostResolver('example.org').resolve('school-b.example.org'), { kind: 'tenant', tenantId: 'school-b' })
})

t.test('the Host is case-insensitive, on either side of the base domain', async (t) => {
  for (const host of ['SCHOOL-A.localhost', 'School-A.LocalHost:8080', 'school-a.LOCALHOST']) {
    t.same(resolver.resolve(host), { kind: 'tenant', tenantId: 'school-a' }, host)
  }
  t.same(new HostResolver('Example.ORG').resolve('school-a.example.org'), { kind: 'tenant', tenantId: 'school-a' })
})

t.test('the port and one trailing dot are ignored', async (t) => {
  for (const host of ['school-a.localhost.', 'school-a.localhost.:8080', 'school-a.localhost:1', 'school-a.localhost:65535']) {
    t.same(resolver.resolve(host), { kind: 'tenant', tenantId: 'school-a' }, host)
  }
})

t.test('the bare base domain is told apart from a school', async (t) => {
  for (const host of ['localhost', 'LOCALHOST:8080', 'localhost.']) t.same(resolver.resolve(host), { kind: 'bare' }, host)
})

t.test('a host outside the base domain, or deeper than one label, is an unknown school', async (t) => {
  for (const host of ['example.org', 'school-a.localhost.example.org', 'a.school-a.localhost', 'notlocalhost', '-bad.localhost', 'bad-.localhost']) {
    t.same(resolver.resolve(host), { kind: 'unknown' }, host)
  }
})

t.test('a missing, repeated or malformed Host is malformed, with a reason', async (t) => {
  const cases: Array<[string | undefined, RegExp]> = [
    [undefined, /missing/],
    ['', /missing/],
    ['school-a.localhost, school-b.localhost', /more than one/],
    ['school-a.localhost, school-a.localhost', /more than one/],
    ['school_a.localhost', /not a valid host/],
    ['school-a.localhost..', /not a valid host/],
    ['school-a..localhost', /not a valid host/],
    ['school-a.localhost:99999', /not a valid host/],
    ['school-a.localhost:0', /not a valid host/],
    ['school-a.localhost:', /not a valid host/],
    ['school-a.localhost:80:80', /not a valid host/],
    ['user@school-a.localhost', /not a valid host/],
    ['school-a.localhost/attendance', /not a valid host/],
    ['school a.localhost', /not a valid host/],
    ['[::1]:8080', /not a valid host/]
  ]
  for (const [host, reason] of cases) {
    const resolution = resolver.resolve(host)
    t.equal(resolution.kind, 'malformed', String(host))
    if (resolution.kind === 'malformed') t.match(resolution.reason, reason, String(host))
  }
})

t.test('a remembered answer is the same answer', async (t) => {
  const small = new HostResolver('localhost', 2)
  const hosts = ['school-a.localhost', 'bad_host', 'localhost', 'school-a.localhost', 'school-c.localhost', 'bad_host']
  const first = hosts.map((host) => small.resolve(host))
  const again = hosts.map((host) => small.resolve(host))
  t.same(again, first)
  t.same(first.map((r) => r.kind), ['tenant', 'malformed', 'bare', 'tenant', 'tenant', 'malformed'])
})
