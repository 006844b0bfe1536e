// The flask-session codec against real Python: every protocol CPython writes is read with its
// types intact, and what ficus writes loads in Python to the very same values and types.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { flaskSessionCodec } from '../../sessions/codecs.ts'
import { PyDate, PyDatetime, frozenSet, tuple } from '../../sessions/values.ts'
import type { SessionData } from '../../sessions/values.ts'
import { FLASK_FIXTURE_DIR, SYSTEM_PYTHON } from '../helpers/flask-app.ts'

const run = promisify(execFile)
const TOOL = FLASK_FIXTURE_DIR + 'pickle_tool.py'

async function python (args: string[], input?: string): Promise<string> {
  const child = run(SYSTEM_PYTHON, [TOOL, ...args], { timeout: 15_000 })
  if (input !== undefined) child.child.stdin?.end(input)
  return (await child).stdout.trim()
}

// The same values as SAMPLE in pickle_tool.py, as the codec represents them.
function expectedSample (): SessionData {
  const sample: SessionData = {
    user: 'alice',
    tenant: 'school-a',
    unicode: 'héllo wörld € 😀 \\ back\nslash',
    empty: '',
    small: 7,
    negative: -5,
    int16: 40000,
    int32: -2_000_000_000,
    int40: -(2 ** 40),
    safe_max: Number.MAX_SAFE_INTEGER,
    big: 2n ** 70n,
    big_negative: -(2n ** 100n) + 3n,
    float: 1.5,
    float_negative: -0.1,
    float_big: 1e300,
    true: true,
    false: false,
    none: null,
    list: [1, 'two', [3.5, null]],
    empty_list: [],
    tuple: tuple(1, 'a'),
    tuple1: tuple('x'),
    tuple4: tuple(1, 2, 3, 4),
    empty_tuple: tuple(),
    flashes: [tuple('message', 'Saved'), tuple('error', 'Oops')],
    dict: { a: 1, nested: { b: [true, false] } },
    empty_dict: {},
    int_keys: new Map([[1, 'one'], [2, 'two']]),
    set: new Set([1, 2, 3]),
    frozenset: frozenSet(['x']),
    bytes: Buffer.from([0, 1, 0xff, 0x62, 0x69, 0x6e]),
    empty_bytes: Buffer.alloc(0),
    naive: new PyDatetime({ year: 2024, month: 3, day: 1, hour: 12, minute: 30, second: 45, microsecond: 123456 }),
    aware: new PyDatetime({ year: 2024, month: 3, day: 1, hour: 12, minute: 30, second: 45, utcOffsetMicroseconds: 0 }),
    offset: new PyDatetime({
      year: 1999, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999999,
      utcOffsetMicroseconds: -(5 * 3600 + 30 * 60) * 1_000_000, tzName: 'X'
    }),
    date: new PyDate(2023, 11, 5)
  }
  Object.defineProperty(sample, '__proto__', { value: 'not a prototype', enumerable: true, writable: true, configurable: true })
  return sample
}

t.test('reads what CPython pickles at every protocol, types intact', async (t) => {
  const lines = (await python(['dump'])).split('\n').map((line) => JSON.parse(line) as { protocol: number, hex: string })
  t.same(lines.map((l) => l.protocol), [0, 1, 2, 3, 4, 5], 'protocols 0 to 5')
  const expected = expectedSample()
  for (const { protocol, hex } of lines) {
    const data = flaskSessionCodec.decode(Buffer.from(hex, 'hex'))
    t.strictSame(Object.keys(data).sort(), Object.keys(expected).sort(), `protocol ${protocol}: keys`)
    for (const key of Object.keys(expected)) {
      t.strictSame(data[key], expected[key], `protocol ${protocol}: ${key}`)
    }
    t.ok(Object.isFrozen(data.tuple) && !Object.isFrozen(data.list), `protocol ${protocol}: tuple stays a tuple, list a list`)
    t.ok(Object.isFrozen(data.frozenset) && !Object.isFrozen(data.set), `protocol ${protocol}: frozenset stays frozen`)
    t.equal(typeof data.big, 'bigint', `protocol ${protocol}: big int is a bigint`)
    t.equal(Object.getPrototypeOf(data), Object.prototype, `protocol ${protocol}: a __proto__ key did not become the prototype`)
  }
})

t.test('what ficus writes, Python loads to the same values and types', async (t) => {
  const bytes = flaskSessionCodec.encode(expectedSample())
  t.equal(await python(['check'], bytes.toString('hex')), 'equal')
})

t.test('a record read from Python and written back is unchanged for Python', async (t) => {
  const [line] = (await python(['dump'])).split('\n').slice(-2)
  const { hex } = JSON.parse(line ?? '{}') as { hex: string }
  const again = flaskSessionCodec.encode(flaskSessionCodec.decode(Buffer.from(hex, 'hex')))
  t.equal(await python(['check'], again.toString('hex')), 'equal')
})

t.test('refuses pickles that would call anything but plain-data constructors', async (t) => {
  // A classic os.system payload (protocol 0), and real pickles of {'x': Fraction(1, 3)} (protocol 4)
  // and {'x': Decimal('1.5')} (protocol 2).
  const evil = Buffer.from("cos\nsystem\n(S'echo pwned'\ntR.", 'latin1')
  t.throws(() => flaskSessionCodec.decode(evil), { code: 'FICUS_ERR_SESSION_UNREADABLE', statusCode: 500 })
  const fraction = '80049529000000000000007d948c0178948c096672616374696f6e73948c084672616374696f6e9493944b014b0386945294732e'
  t.throws(() => flaskSessionCodec.decode(Buffer.from(fraction, 'hex')), { code: 'FICUS_ERR_SESSION_UNREADABLE' })
  const decimal = '80027d7100580100000078710163646563696d616c0a446563696d616c0a71025803000000312e357103857104527105732e'
  t.throws(() => flaskSessionCodec.decode(Buffer.from(decimal, 'hex')), { code: 'FICUS_ERR_SESSION_UNREADABLE' })
  t.throws(() => flaskSessionCodec.decode(Buffer.from('80044b012e', 'hex')), { code: 'FICUS_ERR_SESSION_UNREADABLE' }, 'not a dict')
  t.throws(() => flaskSessionCodec.decode(Buffer.from('8004', 'hex')), { code: 'FICUS_ERR_SESSION_UNREADABLE' }, 'truncated')
})

t.test('refuses values Python cannot hold', async (t) => {
  t.throws(() => flaskSessionCodec.encode({ when: new Date() as never }), { code: 'FICUS_ERR_SESSION_VALUE_UNSUPPORTED' })
  t.throws(() => flaskSessionCodec.encode({ fn: (() => 1) as never }), { code: 'FICUS_ERR_SESSION_VALUE_UNSUPPORTED' })
})

t.test('PyDatetime converts from and to Date', async (t) => {
  const date = new Date('2024-05-06T07:08:09.123Z')
  const py = PyDatetime.fromDate(date)
  t.equal(py.toDate().getTime(), date.getTime())
  t.equal(py.toJSON(), '2024-05-06T07:08:09.123000+00:00')
  const decoded = flaskSessionCodec.decode(flaskSessionCodec.encode({ at: py }))
  t.strictSame(decoded.at, py)
})
