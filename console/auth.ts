// Console sign-in: the admin token (as user `admin`) or a CONSOLE_USERS password. The session
// lives in this process, named by a random id in an HttpOnly, SameSite=Strict cookie scoped to
// /console; each session has its own CSRF token, which every form that changes something carries.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { ConsoleUser } from './config.ts'
import { verifyPassword } from './passwords.ts'

export const SESSION_COOKIE = 'ficus_console'
const SESSION_TTL_MS = 8 * 60 * 60 * 1000
const MAX_SESSIONS = 1_000

export interface ConsoleSession {
  readonly user: string
  readonly csrf: string
  readonly expiresAt: number
}

export class ConsoleAuth {
  readonly #users: ReadonlyMap<string, string>
  readonly #token: Buffer | undefined
  readonly #sessions = new Map<string, ConsoleSession>()

  constructor (users: readonly ConsoleUser[], adminToken: string | undefined) {
    this.#users = new Map(users.map((user) => [user.name, user.passwordHash]))
    this.#token = adminToken === undefined ? undefined : Buffer.from(adminToken)
  }

  async signIn (user: string, password: string): Promise<string | undefined> {
    let ok = false
    if (user === 'admin' && this.#token !== undefined) {
      const given = Buffer.from(password)
      ok = given.length === this.#token.length && timingSafeEqual(given, this.#token)
    } else {
      const hash = this.#users.get(user)
      ok = hash !== undefined && await verifyPassword(password, hash)
    }
    if (!ok) return undefined
    this.#sweep()
    const id = randomBytes(32).toString('base64url')
    this.#sessions.set(id, { user, csrf: randomBytes(24).toString('base64url'), expiresAt: Date.now() + SESSION_TTL_MS })
    return id
  }

  session (cookieHeader: string | undefined): ConsoleSession | undefined {
    const id = readCookie(cookieHeader, SESSION_COOKIE)
    if (id === undefined) return undefined
    const session = this.#sessions.get(id)
    if (session === undefined || session.expiresAt < Date.now()) return undefined
    return session
  }

  signOut (cookieHeader: string | undefined): void {
    const id = readCookie(cookieHeader, SESSION_COOKIE)
    if (id !== undefined) this.#sessions.delete(id)
  }

  #sweep (): void {
    const now = Date.now()
    for (const [id, session] of this.#sessions) if (session.expiresAt < now) this.#sessions.delete(id)
    // The oldest go first when too many are open (a flood of sign-ins cannot grow memory).
    while (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value as string)
  }
}

export function csrfMatches (session: ConsoleSession, given: unknown): boolean {
  if (typeof given !== 'string') return false
  const a = Buffer.from(given)
  const b = Buffer.from(session.csrf)
  return a.length === b.length && timingSafeEqual(a, b)
}

export function sessionCookie (id: string): string {
  return `${SESSION_COOKIE}=${id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`
}

export function clearedCookie (): string {
  return `${SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0`
}

function readCookie (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
