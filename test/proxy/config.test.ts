// Configuration comes from environment variables only, validated at startup: every problem at
// once, each naming its variable with a valid example, and exit code 1.
import t from 'tap'
import { ConfigError, DEFAULTS, parseConfig } from '../../proxy/config.ts'
import { spawnFicus } from '../helpers/proxy-kit.ts'

const BAD: Readonly<Record<string, string>> = {
  PORT: 'eighty',
  BASE_DOMAIN: 'not a domain!',
  BARE_DOMAIN: 'maybe',
  LEGACY_URL: 'ftp://legacy.internal',
  LEGACY_TIMEOUT_MS: '-5',
  PRESERVE_HOST: 'perhaps',
  SERVED_BY_HEADER: 'X Served By',
  TRUSTED_PROXIES: '10.0.0.0/8,not-an-ip',
  MAX_HEADER_BYTES: '10',
  ADMIN_TOKEN: 'short',
  LOG_LEVEL: 'loud',
  TENANTS_FILE: '/nonexistent/ficus/tenants.json'
}

function problemsOf (env: Record<string, string>): readonly string[] {
  try {
    parseConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

t.test('with nothing set, the defaults apply and the result is frozen', async (t) => {
  const config = parseConfig({})
  t.equal(config.port, DEFAULTS.PORT)
  t.equal(config.baseDomain, 'localhost')
  t.equal(config.bareDomain, 'not-found')
  t.equal(config.legacyUrl, undefined, 'the embedded demo legacy app')
  t.equal(config.servedByHeader, 'x-served-by')
  t.equal(config.preserveHost, true)
  t.equal(config.adminPort, DEFAULTS.ADMIN_PORT)
  t.equal(config.adminHost, '127.0.0.1')
  t.match(config.flagsFile, /demo\/flags\.json$/)
  t.match(config.tenantsFile, /demo\/tenants\.json$/)
  t.ok(Object.isFrozen(config))
})

t.test('good values are read and typed', async (t) => {
  const config = parseConfig({
    PORT: '8000', BASE_DOMAIN: 'Example.ORG.', LEGACY_URL: 'http://legacy.internal:8080/', PRESERVE_HOST: 'no',
    SERVED_BY_HEADER: 'X-Backend', TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1', LEGACY_TIMEOUT_MS: '1500', BARE_DOMAIN: 'legacy'
  })
  t.equal(config.port, 8000)
  t.equal(config.baseDomain, 'example.org')
  t.equal(config.legacyUrl, 'http://legacy.internal:8080')
  t.equal(config.preserveHost, false)
  t.equal(config.servedByHeader, 'x-backend')
  t.same(config.trustedProxies, ['10.0.0.0/8', '127.0.0.1'])
  t.equal(config.legacyTimeoutMs, 1500)
  t.equal(config.bareDomain, 'legacy')
})

t.test('several bad variables are all reported at once, each by name with an example', async (t) => {
  let caught: unknown
  try { parseConfig(BAD) } catch (error) { caught = error }
  t.type(caught, ConfigError)
  const problems = (caught as ConfigError).problems
  t.equal(problems.length, Object.keys(BAD).length, 'one problem per bad variable')
  for (const name of Object.keys(BAD)) {
    const problem = problems.find((p) => p.startsWith(`${name} `))
    t.ok(problem, `${name} is named`)
    t.match(problem, /e\.g\. \S/, `${name} comes with an example`)
    t.match((caught as Error).message, name, `${name} is in the message`)
  }
  t.equal((caught as ConfigError).code, 'FICUS_ERR_CONFIG')
})

t.test('limits that contradict each other are reported', async (t) => {
  t.match(problemsOf({ HEADERS_TIMEOUT_MS: '5000', REQUEST_TIMEOUT_MS: '1000' }), [/^HEADERS_TIMEOUT_MS .*e\.g\./])
  t.match(problemsOf({ PORT: '9000', ADMIN_PORT: '9000' }), [/^ADMIN_PORT .*e\.g\./])
})

t.test('an empty SERVED_BY_HEADER disables the header rather than failing', async (t) => {
  t.equal(parseConfig({ SERVED_BY_HEADER: '' }).servedByHeader, undefined)
})

t.test('node proxy/main.ts with bad variables exits 1 and lists every problem on stderr', async (t) => {
  const ficus = spawnFicus(t, { ...BAD, ADMIN_PORT: '0' })
  const exit = await ficus.exited
  t.equal(exit.code, 1)
  const stderr = ficus.stderr()
  for (const name of Object.keys(BAD)) t.match(stderr, new RegExp(`^\\s*- ${name} .*e\\.g\\.`, 'm'), `${name} on stderr`)
  t.notMatch(stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace')
  t.equal(ficus.logs.length, 0, 'nothing started')
})
