// The access settings: the Flask-Login preset, per-key overrides, the sign-in path, the CSRF
// secret (never printed), and one clear problem per bad variable.
import t from 'tap'
import { parseAccessConfig } from '../../access/config.ts'
import { ConfigError, parseConfig } from '../../proxy/config.ts'

t.test('defaults: plain keys, /login, a generated secret only for the embedded demo', async (t) => {
  const problems: string[] = []
  const demo = parseAccessConfig({}, problems)
  t.same(problems, [])
  t.same(demo.keys, { userKey: 'user', rolesKey: 'roles', freshKey: undefined })
  t.equal(demo.loginPath, '/login')
  t.equal(demo.logoutPath, '/logout')
  t.equal(demo.csrfTimeLimitSeconds, 3600)
  t.equal(demo.csrfSessionKey, 'csrf_token')
  t.equal(demo.csrfSecretGenerated, true)
  t.match(demo.csrfSecret, /^[0-9a-f]{48}$/)
  const real = parseAccessConfig({ LEGACY_URL: 'http://legacy:8000' }, problems)
  t.equal(real.csrfSecret, undefined, 'a real legacy without a secret: unsafe requests are refused')
  t.equal(parseAccessConfig({ LEGACY_URL: 'http://legacy:8000', SESSION_SECRET: 'flask-secret' }, problems).csrfSecret, 'flask-secret', 'the legacy SECRET_KEY by default')
  t.equal(parseAccessConfig({ LEGACY_URL: 'http://legacy:8000', SESSION_SECRET: 'a', CSRF_SECRET: 'b' }, problems).csrfSecret, 'b', 'WTF_CSRF_SECRET_KEY when it differs')
  t.notMatch(JSON.stringify(parseAccessConfig({ CSRF_SECRET: 'do-not-print' }, problems)), /do-not-print/, 'the secret is not in the logged config')
})

t.test('the Flask-Login preset, with keys overridable one by one', async (t) => {
  const problems: string[] = []
  t.same(parseAccessConfig({ SESSION_USER_PRESET: 'flask-login' }, problems).keys, { userKey: '_user_id', rolesKey: 'roles', freshKey: '_fresh' })
  t.same(parseAccessConfig({ SESSION_USER_PRESET: 'flask-login', SESSION_ROLES_KEY: 'groups', SESSION_USER_KEY: 'uid' }, problems).keys, { userKey: 'uid', rolesKey: 'groups', freshKey: '_fresh' })
  t.same(problems, [])
})

t.test('bad values: one problem each, naming the variable', async (t) => {
  const error = t.throws(() => parseConfig({
    SESSION_USER_PRESET: 'django',
    SESSION_USER_KEY: 'has space',
    LOGIN_PATH: 'https://evil.example/login',
    LOGOUT_PATH: '//evil.example',
    CSRF_TIME_LIMIT_SECONDS: '-1',
    CSRF_SESSION_KEY: 'csrf token'
  })) as ConfigError
  t.type(error, ConfigError)
  for (const name of ['SESSION_USER_PRESET', 'SESSION_USER_KEY', 'LOGIN_PATH', 'LOGOUT_PATH', 'CSRF_TIME_LIMIT_SECONDS', 'CSRF_SESSION_KEY']) {
    t.equal(error.problems.filter((problem) => problem.startsWith(name + ' ')).length, 1, name)
  }
})
