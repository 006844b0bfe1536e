// The json codec: a UTF-8 JSON object, nothing JSON cannot hold.
import t from 'tap'
import { jsonCodec } from '../../sessions/codecs.ts'

t.test('round-trips a session object', async (t) => {
  const data = { user: 'élodie', tenant: 'school-a', n: 3, ok: true, none: null, prefs: { theme: 'dark', list: [1, 2] } }
  t.strictSame(jsonCodec.decode(jsonCodec.encode(data)), data)
})

t.test('a __proto__ key stays a key', async (t) => {
  const data = jsonCodec.decode(Buffer.from('{"__proto__":{"admin":true},"user":"x"}'))
  t.equal(Object.getPrototypeOf(data), Object.prototype)
  t.equal((data as Record<string, unknown>).admin, undefined)
  t.same(Object.keys(data), ['__proto__', 'user'])
})

t.test('refuses records that are not JSON objects', async (t) => {
  for (const text of ['[1]', 'null', '"s"', '{bad', '']) {
    t.throws(() => jsonCodec.decode(Buffer.from(text)), { code: 'FICUS_ERR_SESSION_UNREADABLE' }, text)
  }
})

t.test('refuses values JSON cannot hold', async (t) => {
  for (const value of [1n, new Date(), new Map(), Infinity, Buffer.from('x')]) {
    t.throws(() => jsonCodec.encode({ v: value as never }), { code: 'FICUS_ERR_SESSION_VALUE_UNSUPPORTED' }, String(value))
  }
})
