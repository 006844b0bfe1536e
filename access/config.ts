// Who is signed in and where to send those who are not, parsed from the environment that
// proxy/config.ts hands over. The keys follow the legacy's session: a preset for Flask-Login,
// each key overridable.
import { randomBytes } from 'node:crypto'
import { readOneOf, readSet, readWholeNumber, type Env } from '../config/env.ts'
import type { SessionUserKeys } from './session-user.ts'

export const SESSION_USER_PRESETS = ['plain', 'flask-login'] as const
export type SessionUserPreset = typeof SESSION_USER_PRESETS[number]

const PRESET_KEYS: Readonly<Record<SessionUserPreset, SessionUserKeys>> = Object.freeze({
  plain: { userKey: 'user', rolesKey: 'roles', freshKey: undefined },
  // Flask-Login keeps the id under `_user_id` and `_fresh` (false after a remember-me restore);
  // roles are the legacy's own, put in the session at sign-in.
  'flask-login': { userKey: '_user_id', rolesKey: 'roles', freshKey: '_fresh' }
})

export const ACCESS_DEFAULTS = Object.freeze({
  SESSION_USER_PRESET: 'plain' as SessionUserPreset,
  LOGIN_PATH: '/login',
  LOGOUT_PATH: '/logout',
  CSRF_TIME_LIMIT_SECONDS: 3600,
  CSRF_SESSION_KEY: 'csrf_token'
})

export interface AccessConfig {
  readonly preset: SessionUserPreset
  readonly keys: SessionUserKeys
  /** The legacy's sign-in page; refused page requests are sent there with `next`. */
  readonly loginPath: string
  readonly logoutPath: string
  /** Flask-WTF's secret (WTF_CSRF_SECRET_KEY or SECRET_KEY). Not enumerable, so logs never show it. */
  readonly csrfSecret: string | undefined
  /** True when no secret was configured and the embedded demo legacy shares a generated one. */
  readonly csrfSecretGenerated: boolean
  readonly csrfTimeLimitSeconds: number
  /** The session key (and form field) of the CSRF token, Flask-WTF's WTF_CSRF_FIELD_NAME. */
  readonly csrfSessionKey: string
}

const SESSION_KEY = /^[\x21-\x7e]{1,128}$/
const FIELD_NAME = /^[A-Za-z0-9_-]{1,64}$/

function key (env: Env, name: string, fallback: string | undefined, problems: string[]): string | undefined {
  const raw = readSet(env, name, problems)
  if (raw === undefined) return fallback
  if (!SESSION_KEY.test(raw)) {
    problems.push(`${name} must be a session key (printable, no spaces), e.g. ${name}=${fallback ?? '_fresh'}`)
    return fallback
  }
  return raw
}

function path (env: Env, name: string, fallback: string, problems: string[]): string {
  const raw = readSet(env, name, problems)
  if (raw === undefined) return fallback
  if (!raw.startsWith('/') || raw.startsWith('//') || /[\s?#\\]/.test(raw)) {
    problems.push(`${name} must be an absolute path on the school's own host with no query, e.g. ${name}=${fallback}`)
    return fallback
  }
  return raw
}

export function parseAccessConfig (env: Env, problems: string[]): AccessConfig {
  const preset = readOneOf(env, 'SESSION_USER_PRESET', SESSION_USER_PRESETS, ACCESS_DEFAULTS.SESSION_USER_PRESET, problems)
  const presetKeys = PRESET_KEYS[preset]
  const keys: SessionUserKeys = Object.freeze({
    userKey: key(env, 'SESSION_USER_KEY', presetKeys.userKey, problems) ?? presetKeys.userKey,
    rolesKey: key(env, 'SESSION_ROLES_KEY', presetKeys.rolesKey, problems) ?? presetKeys.rolesKey,
    freshKey: key(env, 'SESSION_FRESH_KEY', presetKeys.freshKey, problems)
  })
  const csrfSessionKey = readSet(env, 'CSRF_SESSION_KEY', problems) ?? ACCESS_DEFAULTS.CSRF_SESSION_KEY
  if (!FIELD_NAME.test(csrfSessionKey)) problems.push(`CSRF_SESSION_KEY must be a form field name (letters, digits, _ and -), e.g. CSRF_SESSION_KEY=${ACCESS_DEFAULTS.CSRF_SESSION_KEY}`)

  // SESSION_SECRET's own problems (empty, too short) are the session config's to report.
  const sessionSecret = env.SESSION_SECRET?.trim()
  const configured = readSet(env, 'CSRF_SECRET', problems) ?? (sessionSecret === '' ? undefined : sessionSecret)
  // The embedded demo legacy (no LEGACY_URL) signs its forms with the secret ficus gives it.
  const demo = env.LEGACY_URL === undefined
  const csrfSecret = configured ?? (demo ? randomBytes(24).toString('hex') : undefined)

  const config: AccessConfig = {
    preset,
    keys,
    loginPath: path(env, 'LOGIN_PATH', ACCESS_DEFAULTS.LOGIN_PATH, problems),
    logoutPath: path(env, 'LOGOUT_PATH', ACCESS_DEFAULTS.LOGOUT_PATH, problems),
    csrfSecret: undefined,
    csrfSecretGenerated: configured === undefined && demo,
    csrfTimeLimitSeconds: readWholeNumber(env, 'CSRF_TIME_LIMIT_SECONDS', { fallback: ACCESS_DEFAULTS.CSRF_TIME_LIMIT_SECONDS, min: 0, max: 31_536_000 }, problems),
    csrfSessionKey
  }
  Object.defineProperty(config, 'csrfSecret', { value: csrfSecret, enumerable: false })
  return Object.freeze(config)
}
