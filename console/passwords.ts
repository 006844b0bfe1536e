// Console passwords: scrypt (node:crypto) with a random salt, stored as
// `scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>`. `ficus console-password` prints one.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

const KEY_BYTES = 32
const DEFAULT_COST = { N: 16_384, r: 8, p: 1 }
const PATTERN = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/

function derive (password: string, salt: Buffer, cost: { N: number, r: number, p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 128 * cost.N * cost.r * 2 }, (error, key) => { if (error === null) resolve(key); else reject(error) })
  })
}

export async function hashPassword (password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, DEFAULT_COST)
  return `scrypt$${DEFAULT_COST.N}$${DEFAULT_COST.r}$${DEFAULT_COST.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

export function isPasswordHash (text: string): boolean {
  return PATTERN.test(text)
}

export async function verifyPassword (password: string, stored: string): Promise<boolean> {
  const match = PATTERN.exec(stored)
  if (match === null) return false
  const [, N, r, p, salt, hash] = match as unknown as [string, string, string, string, string, string]
  const expected = Buffer.from(hash, 'base64')
  const key = await derive(password, Buffer.from(salt, 'base64'), { N: Number(N), r: Number(r), p: Number(p) })
  return key.length === expected.length && timingSafeEqual(key, expected)
}
