// parseSessionConfig: named defaults, one problem per bad variable, the secret kept out of logs.
import t from 'tap'
import { SESSION_DEFAULTS, createSessions, parseSessionConfig } from '../../sessions/config.ts'
import { MemorySessionStore } from '../../sessions/memory-store.ts'

t.test('defaults describe the embedded store and Flask-Session names', async (t) => {
  const problems: string[] = []
  const config = parseSessionConfig({}, problems)
  t.same(problems, [])
  t.ok(Object.isFrozen(config))
  t.equal(config.redisUrl, undefined)
  t.equal(config.cookieName, 'session')
  t.equal(config.keyPrefix, 'session:')
  t.equal(config.codec, SESSION_DEFAULTS.SESSION_CODEC)
  t.equal(config.signer, 'none')
  t.equal(config.tenantKey, 'tenant')
  t.equal(config.ttlSeconds, undefined)
  const components = createSessions(config)
  t.ok(components.store instanceof MemorySessionStore)
  t.equal(components.signer, undefined)
  await components.store.close()
})

t.test('reads every variable', async (t) => {
  const problems: string[] = []
  const config = parseSessionConfig({
    REDIS_URL: 'redis://127.0.0.1:6379/2',
    SESSION_COOKIE: 'sid',
    SESSION_KEY_PREFIX: 'app:session:',
    SESSION_CODEC: 'flask-session',
    SESSION_SIGNER: 'itsdangerous',
    SESSION_SECRET: 's3cret-of-sixteen-bytes',
    SESSION_TENANT_KEY: 'school',
    SESSION_TTL_SECONDS: '2678400',
    SESSION_REDIS_TIMEOUT_MS: '250',
    SESSION_WRITE_RETRIES: '3',
    SESSION_BINDING_CACHE_SIZE: '50'
  }, problems)
  t.same(problems, [])
  t.match(config, {
    redisUrl: 'redis://127.0.0.1:6379/2', cookieName: 'sid', keyPrefix: 'app:session:', codec: 'flask-session',
    signer: 'itsdangerous', secret: 's3cret-of-sixteen-bytes', tenantKey: 'school', ttlSeconds: 2678400, redisTimeoutMs: 250,
    writeRetries: 3, bindingCacheSize: 50
  })
  t.notMatch(JSON.stringify(config), /s3cret/, 'the secret does not show when the config is logged')
})

t.test('one problem per bad variable, each naming it with an example', async (t) => {
  const problems: string[] = []
  parseSessionConfig({
    REDIS_URL: 'http://x',
    SESSION_COOKIE: 'bad name',
    SESSION_CODEC: 'pickle',
    SESSION_SIGNER: 'itsdangerous',
    SESSION_TTL_SECONDS: '-1',
    SESSION_REDIS_TIMEOUT_MS: 'soon',
    SESSION_WRITE_RETRIES: '1.5',
    SESSION_BINDING_CACHE_SIZE: '0'
  }, problems)
  const names = ['REDIS_URL', 'SESSION_COOKIE', 'SESSION_CODEC', 'SESSION_SECRET', 'SESSION_TTL_SECONDS',
    'SESSION_REDIS_TIMEOUT_MS', 'SESSION_WRITE_RETRIES', 'SESSION_BINDING_CACHE_SIZE']
  t.equal(problems.length, names.length, problems.join('\n'))
  for (const name of names) t.ok(problems.some((p) => p.startsWith(name) && p.includes('e.g.')), name)
})
