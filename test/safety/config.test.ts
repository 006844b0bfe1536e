// The safety, drain, pre-warm and metrics variables: named defaults, and every bad value reported
// at once with the variable's name and a valid example.
import t from 'tap'
import { ConfigError, parseConfig } from '../../proxy/config.ts'
import { SAFETY_DEFAULTS, parseSafetyConfig } from '../../safety/config.ts'

t.test('defaults', async (t) => {
  const problems: string[] = []
  const config = parseSafetyConfig({}, problems)
  t.same(problems, [])
  t.equal(config.shadow.flagSuffix, SAFETY_DEFAULTS.SHADOW_FLAG_SUFFIX)
  t.equal(config.shadow.concurrency, SAFETY_DEFAULTS.SHADOW_CONCURRENCY)
  t.equal(config.newHandlerTimeoutMs, SAFETY_DEFAULTS.NEW_HANDLER_TIMEOUT_MS)
  t.same(config.breaker, { windowMs: 30_000, minRequests: 20, errorRate: 0.5, coolDownMs: 30_000, maxSchools: 10_000 })
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.breaker) && Object.isFrozen(config.shadow))
  const proxy = parseConfig({ LEGACY_URL: 'http://legacy.test:8080' })
  t.match(proxy, { drainDelayMs: 5_000, shutdownTimeoutMs: 30_000, workers: 1, workerIndex: undefined, prewarmLegacyConnections: 4, prewarmPath: '/', prewarmSchools: [], accessLog: true, metricsMaxCohorts: 20 })
})

t.test('values are read', async (t) => {
  const config = parseConfig({
    LEGACY_URL: 'http://legacy.test:8080',
    SHADOW_FLAG_SUFFIX: '.shadow',
    BREAKER_ERROR_RATE: '0.25',
    BREAKER_MIN_REQUESTS: '5',
    DRAIN_DELAY_MS: '0',
    WORKERS: '4',
    PREWARM_SCHOOLS: 'School-A, school-b',
    PREWARM_PATH: '/healthz',
    ACCESS_LOG: 'false'
  })
  t.equal(config.safety.shadow.flagSuffix, '.shadow')
  t.equal(config.safety.breaker.errorRate, 0.25)
  t.equal(config.safety.breaker.minRequests, 5)
  t.equal(config.drainDelayMs, 0)
  t.equal(config.workers, 4)
  t.same(config.prewarmSchools, ['school-a', 'school-b'])
  t.equal(config.prewarmPath, '/healthz')
  t.equal(config.accessLog, false)
})

t.test('every bad value is reported at once, with its name and an example', async (t) => {
  const error = t.throws(() => parseConfig({
    LEGACY_URL: 'http://legacy.test:8080',
    SHADOW_FLAG_SUFFIX: ' shadow!',
    SHADOW_CONCURRENCY: '-1',
    BREAKER_ERROR_RATE: '1.5',
    BREAKER_WINDOW_MS: '10',
    DRAIN_DELAY_MS: 'soon',
    WORKERS: '0',
    PREWARM_PATH: 'healthz',
    PREWARM_SCHOOLS: 'school-a,Not A School'
  })) as ConfigError
  t.ok(error instanceof ConfigError)
  const expected = ['SHADOW_FLAG_SUFFIX', 'SHADOW_CONCURRENCY', 'BREAKER_ERROR_RATE', 'BREAKER_WINDOW_MS', 'DRAIN_DELAY_MS', 'WORKERS', 'PREWARM_PATH', 'PREWARM_SCHOOLS']
  t.equal(error.problems.length, expected.length, error.problems.join('\n'))
  for (const name of expected) {
    const problem = error.problems.find((p) => p.startsWith(name))
    t.ok(problem, `${name} reported`)
    t.match(problem, /e\.g\. /, `${name} has an example`)
  }
})
