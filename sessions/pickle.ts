// Python pickle, limited to the data a session holds. Reading accepts protocols 0 to 5 as
// CPython writes them; the only globals it will call are the handful CPython itself uses to
// pickle bytes, sets, datetimes and OrderedDicts, so a record can never make us build anything
// else. Writing produces protocol 4 (what Python 3.8+ writes by default) without framing or memo,
// which every Python 3.4+ reads back.
//
// The npm `pickleparser` reads ints beyond 2^53 and negative LONG1/LONG4 values wrongly and does
// not decode protocol 0's raw-unicode-escape strings, so reading is done here as well.
import type { SessionValue } from './values.ts'
import { PyDate, PyDatetime } from './values.ts'

export class PickleError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PickleError'
  }
}

const HIGHEST_PROTOCOL = 5
const WRITE_PROTOCOL = 4
/** Nesting deeper than this is not a session; refusing it keeps the converter off the stack limit. */
const MAX_DEPTH = 200
const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER)
const MIN_SAFE_BIGINT = BigInt(Number.MIN_SAFE_INTEGER)

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  FLOAT: 0x46,
  INT: 0x49,
  BININT: 0x4a,
  BININT1: 0x4b,
  LONG: 0x4c,
  BININT2: 0x4d,
  NONE: 0x4e,
  REDUCE: 0x52,
  STRING: 0x53,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  UNICODE: 0x56,
  BINUNICODE: 0x58,
  APPEND: 0x61,
  GLOBAL: 0x63,
  DICT: 0x64,
  APPENDS: 0x65,
  GET: 0x67,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  PUT: 0x70,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  EMPTY_LIST: 0x5d,
  EMPTY_TUPLE: 0x29,
  BINFLOAT: 0x47,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
  READONLY_BUFFER: 0x98
} as const

// ---------------------------------------------------------------------------------------------
// Reading

/** A global the reader agreed to call; REDUCE applies it to its argument tuple. */
class Callable {
  readonly name: string
  readonly apply: (args: readonly Item[]) => Item
  constructor (name: string, apply: (args: readonly Item[]) => Item) {
    this.name = name
    this.apply = apply
  }
}

class Timedelta {
  readonly microseconds: number
  constructor (microseconds: number) {
    this.microseconds = microseconds
  }
}

class Timezone {
  readonly offsetMicroseconds: number
  readonly name: string | null
  constructor (offsetMicroseconds: number, name: string | null) {
    this.offsetMicroseconds = offsetMicroseconds
    this.name = name
  }
}

/** While parsing, dicts are Maps (keys of any type) and tuples are frozen arrays. */
type Item = SessionValue | Callable | Timedelta | Timezone | Item[] | readonly Item[] | Map<Item, Item> | Set<Item>

function toBytes (value: Item, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value
  // Python 2 pickles carry byte strings as str; CPython reads them as latin-1 for datetimes.
  if (typeof value === 'string') return Buffer.from(value, 'latin1')
  throw new PickleError(`${what} expects bytes`)
}

function toInt (value: Item, what: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value
  throw new PickleError(`${what} expects an int`)
}

function buildDatetime (args: readonly Item[]): PyDatetime {
  const state = toBytes(args[0] ?? null, 'datetime')
  if (state.length !== 10 || args.length > 2) throw new PickleError('datetime state must be 10 bytes')
  const tz = args[1]
  if (tz !== undefined && tz !== null && !(tz instanceof Timezone)) {
    throw new PickleError('only datetime.timezone offsets are supported as tzinfo')
  }
  const b = (i: number): number => state[i] ?? 0
  return new PyDatetime({
    year: b(0) * 256 + b(1),
    month: b(2) & 0x7f,
    day: b(3),
    hour: b(4),
    minute: b(5),
    second: b(6),
    microsecond: (b(7) << 16) | (b(8) << 8) | b(9),
    fold: (b(2) & 0x80) === 0 ? 0 : 1,
    utcOffsetMicroseconds: tz instanceof Timezone ? tz.offsetMicroseconds : null,
    tzName: tz instanceof Timezone ? tz.name : null
  })
}

function buildSet (args: readonly Item[], frozen: boolean): Set<Item> {
  const items = args[0] ?? []
  if (!Array.isArray(items)) throw new PickleError('set expects a list')
  const set = new Set<Item>(items)
  return frozen ? Object.freeze(set) : set
}

const bytesFromArgs = (args: readonly Item[]): Uint8Array => {
  const first = args[0]
  if (first === undefined) return Buffer.alloc(0)
  if (first instanceof Uint8Array) return Buffer.from(first)
  if (Array.isArray(first)) return Buffer.from(first.map((n) => toInt(n, 'bytes')))
  throw new PickleError('bytes expects a list of ints or bytes')
}

const BUILTINS: Record<string, (args: readonly Item[]) => Item> = {
  set: (args) => buildSet(args, false),
  frozenset: (args) => buildSet(args, true),
  bytes: bytesFromArgs,
  bytearray: bytesFromArgs
}

const GLOBALS: ReadonlyMap<string, Callable> = new Map(Object.entries({
  '_codecs encode': (args: readonly Item[]): Item => {
    // How protocols 0-2 carry bytes: _codecs.encode(latin-1 text, 'latin1').
    const [text, encoding] = args
    if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
      throw new PickleError('_codecs.encode is only read for latin1 text')
    }
    return Buffer.from(text, 'latin1')
  },
  ...Object.fromEntries(Object.entries(BUILTINS).flatMap(([name, fn]) =>
    [[`builtins ${name}`, fn], [`__builtin__ ${name}`, fn]])),
  'datetime datetime': buildDatetime,
  'datetime date': (args: readonly Item[]): Item => {
    const state = toBytes(args[0] ?? null, 'date')
    if (state.length !== 4 || args.length !== 1) throw new PickleError('date state must be 4 bytes')
    return new PyDate((state[0] ?? 0) * 256 + (state[1] ?? 0), state[2] ?? 0, state[3] ?? 0)
  },
  'datetime timedelta': (args: readonly Item[]): Item => {
    const [days = 0, seconds = 0, microseconds = 0] = args
    return new Timedelta((toInt(days, 'timedelta') * 86_400 + toInt(seconds, 'timedelta')) * 1_000_000 +
      toInt(microseconds, 'timedelta'))
  },
  'datetime timezone': (args: readonly Item[]): Item => {
    const [offset, name = null] = args
    if (!(offset instanceof Timedelta) || (name !== null && typeof name !== 'string')) {
      throw new PickleError('timezone expects a timedelta and an optional name')
    }
    return new Timezone(offset.microseconds, name)
  },
  'collections OrderedDict': (args: readonly Item[]): Item => {
    const map = new Map<Item, Item>()
    const pairs = args[0]
    if (Array.isArray(pairs)) {
      for (const pair of pairs) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new PickleError('OrderedDict expects pairs')
        map.set(pair[0] as Item, pair[1] as Item)
      }
    }
    return map
  }
}).map(([key, fn]) => [key, new Callable(key.replace(' ', '.'), fn)]))

function resolveGlobal (module: string, name: string): Callable {
  const found = GLOBALS.get(`${module} ${name}`)
  if (found === undefined) throw new PickleError(`refusing to load global ${module}.${name}`)
  return found
}

class Reader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  #pos = 0

  constructor (bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  get done (): boolean { return this.#pos >= this.#bytes.length }

  #take (n: number): number {
    const at = this.#pos
    if (n < 0 || at + n > this.#bytes.length) throw new PickleError('pickle data was truncated')
    this.#pos = at + n
    return at
  }

  byte (): number { return this.#view.getUint8(this.#take(1)) }
  uint16 (): number { return this.#view.getUint16(this.#take(2), true) }
  int32 (): number { return this.#view.getInt32(this.#take(4), true) }
  uint32 (): number { return this.#view.getUint32(this.#take(4), true) }
  uint64 (): number {
    const value = this.#view.getBigUint64(this.#take(8), true)
    if (value > MAX_SAFE_BIGINT) throw new PickleError('pickle length out of range')
    return Number(value)
  }

  float64 (): number { return this.#view.getFloat64(this.#take(8), false) }
  bytes (n: number): Uint8Array {
    const at = this.#take(n)
    return this.#bytes.subarray(at, at + n)
  }

  utf8 (n: number): string { return Buffer.from(this.bytes(n)).toString('utf8') }
  ascii (n: number): string { return asciiOnly(this.bytes(n)) }

  /** A protocol 0 argument: bytes up to the newline, as latin-1 (protocol 0 is 8-bit text). */
  line (): string {
    const end = this.#bytes.indexOf(0x0a, this.#pos)
    if (end === -1) throw new PickleError('pickle line was not terminated')
    const text = Buffer.from(this.#bytes.subarray(this.#pos, end)).toString('latin1')
    this.#pos = end + 1
    return text
  }
}

function asciiOnly (bytes: Uint8Array): string {
  for (const b of bytes) {
    // CPython's default encoding='ASCII' refuses Python 2 byte strings that are not ASCII.
    if (b > 0x7f) throw new PickleError('Python 2 str is not ASCII')
  }
  return Buffer.from(bytes).toString('latin1')
}

function intFromBigInt (value: bigint): number | bigint {
  return value >= MIN_SAFE_BIGINT && value <= MAX_SAFE_BIGINT ? Number(value) : value
}

function parseDecimalInt (text: string): number | bigint {
  if (!/^[+-]?\d+$/.test(text)) throw new PickleError('bad int in protocol 0 pickle')
  return intFromBigInt(BigInt(text))
}

function decodeLong (bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0)
  if (((bytes[bytes.length - 1] ?? 0) & 0x80) !== 0) value -= 1n << BigInt(bytes.length * 8)
  return intFromBigInt(value)
}

function parseReprFloat (text: string): number {
  switch (text) {
    case 'inf': return Infinity
    case '-inf': return -Infinity
    case 'nan': return NaN
  }
  const value = Number(text)
  if (text === '' || Number.isNaN(value)) throw new PickleError('bad float in protocol 0 pickle')
  return value
}

/** Protocol 0 UNICODE: latin-1 bytes where only \uXXXX and \UXXXXXXXX are escapes. */
function decodeRawUnicodeEscape (text: string): string {
  let out = ''
  let i = 0
  while (i < text.length) {
    const slash = text.indexOf('\\', i)
    if (slash === -1) { out += text.slice(i); break }
    out += text.slice(i, slash)
    let run = slash
    while (text[run] === '\\') run++
    const count = run - slash
    const marker = text[run]
    if (count % 2 === 1 && (marker === 'u' || marker === 'U')) {
      const width = marker === 'u' ? 4 : 8
      const hex = text.slice(run + 1, run + 1 + width)
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== width) throw new PickleError('bad \\u escape in pickle')
      out += '\\'.repeat(count - 1) + String.fromCodePoint(parseInt(hex, 16))
      i = run + 1 + width
    } else {
      out += '\\'.repeat(count)
      i = run
    }
  }
  return out
}

const STRING_ESCAPES: Record<string, string> = { '\\': '\\', '\'': '\'', '"': '"', n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', f: '\f', v: '\v', 0: '\0' }

/** Protocol 0 STRING (Python 2 str): a quoted repr with backslash escapes. */
function decodeStringRepr (text: string): string {
  const quote = text[0]
  if (text.length < 2 || (quote !== '\'' && quote !== '"') || text[text.length - 1] !== quote) {
    throw new PickleError('insecure string pickle')
  }
  const body = text.slice(1, -1)
  const out = body.replace(/\\(x[0-9a-fA-F]{2}|.)/gs, (_m, esc: string) => {
    if (esc.length === 3) return String.fromCharCode(parseInt(esc.slice(1), 16))
    const plain = STRING_ESCAPES[esc]
    if (plain === undefined) throw new PickleError('unsupported escape in Python 2 str')
    return plain
  })
  return asciiOnly(Buffer.from(out, 'latin1'))
}

/**
 * Reads one pickle. Throws PickleError for anything that is not plain data (other classes,
 * persistent ids, extensions, out-of-band buffers) or that is malformed.
 */
export function unpickle (bytes: Uint8Array): SessionValue {
  const r = new Reader(bytes)
  let stack: Item[] = []
  const marks: Item[][] = []
  const memo = new Map<number, Item>()

  const pop = (): Item => {
    if (stack.length === 0) throw new PickleError('pickle stack underflow')
    return stack.pop() as Item
  }
  const top = (): Item => {
    if (stack.length === 0) throw new PickleError('pickle stack underflow')
    return stack[stack.length - 1] as Item
  }
  const popMark = (): Item[] => {
    const items = stack
    const previous = marks.pop()
    if (previous === undefined) throw new PickleError('pickle mark missing')
    stack = previous
    return items
  }
  const memoGet = (index: number): Item => {
    if (!memo.has(index)) throw new PickleError('pickle memo key missing')
    return memo.get(index) as Item
  }
  const setItems = (target: Item, items: Item[]): void => {
    if (!(target instanceof Map)) throw new PickleError('SETITEMS target is not a dict')
    const map = target as Map<Item, Item>
    for (let i = 0; i + 1 < items.length; i += 2) map.set(items[i] as Item, items[i + 1] as Item)
    if (items.length % 2 !== 0) throw new PickleError('odd number of dict items')
  }
  const appendTo = (target: Item, items: Item[]): void => {
    if (!Array.isArray(target) || Object.isFrozen(target)) throw new PickleError('APPEND target is not a list')
    for (const item of items) (target as Item[]).push(item)
  }

  while (!r.done) {
    const op = r.byte()
    switch (op) {
      case OP.PROTO: {
        const version = r.byte()
        if (version > HIGHEST_PROTOCOL) throw new PickleError(`unsupported pickle protocol ${version}`)
        break
      }
      case OP.FRAME: r.uint64(); break
      case OP.STOP: {
        if (stack.length !== 1 || marks.length !== 0) throw new PickleError('pickle ended with a bad stack')
        return finalize(stack[0] as Item, new Map(), 0)
      }
      case OP.MARK: marks.push(stack); stack = []; break
      case OP.POP: pop(); break
      case OP.POP_MARK: popMark(); break
      case OP.DUP: stack.push(top()); break
      case OP.PUT: memo.set(Number(parseDecimalInt(r.line())), top()); break
      case OP.BINPUT: memo.set(r.byte(), top()); break
      case OP.LONG_BINPUT: memo.set(r.uint32(), top()); break
      case OP.MEMOIZE: memo.set(memo.size, top()); break
      case OP.GET: stack.push(memoGet(Number(parseDecimalInt(r.line())))); break
      case OP.BINGET: stack.push(memoGet(r.byte())); break
      case OP.LONG_BINGET: stack.push(memoGet(r.uint32())); break
      case OP.NONE: stack.push(null); break
      case OP.NEWTRUE: stack.push(true); break
      case OP.NEWFALSE: stack.push(false); break
      case OP.INT: {
        const text = r.line()
        stack.push(text === '01' ? true : text === '00' ? false : parseDecimalInt(text))
        break
      }
      case OP.LONG: stack.push(parseDecimalInt(r.line().replace(/L$/, ''))); break
      case OP.BININT: stack.push(r.int32()); break
      case OP.BININT1: stack.push(r.byte()); break
      case OP.BININT2: stack.push(r.uint16()); break
      case OP.LONG1: stack.push(decodeLong(r.bytes(r.byte()))); break
      case OP.LONG4: {
        const n = r.int32()
        if (n < 0) throw new PickleError('negative LONG4 length')
        stack.push(decodeLong(r.bytes(n)))
        break
      }
      case OP.FLOAT: stack.push(parseReprFloat(r.line())); break
      case OP.BINFLOAT: stack.push(r.float64()); break
      case OP.STRING: stack.push(decodeStringRepr(r.line())); break
      case OP.BINSTRING: {
        const n = r.int32()
        if (n < 0) throw new PickleError('negative BINSTRING length')
        stack.push(r.ascii(n))
        break
      }
      case OP.SHORT_BINSTRING: stack.push(r.ascii(r.byte())); break
      case OP.UNICODE: stack.push(decodeRawUnicodeEscape(r.line())); break
      case OP.BINUNICODE: stack.push(r.utf8(r.uint32())); break
      case OP.SHORT_BINUNICODE: stack.push(r.utf8(r.byte())); break
      case OP.BINUNICODE8: stack.push(r.utf8(r.uint64())); break
      case OP.BINBYTES: stack.push(Buffer.from(r.bytes(r.uint32()))); break
      case OP.SHORT_BINBYTES: stack.push(Buffer.from(r.bytes(r.byte()))); break
      case OP.BINBYTES8: stack.push(Buffer.from(r.bytes(r.uint64()))); break
      case OP.BYTEARRAY8: stack.push(Buffer.from(r.bytes(r.uint64()))); break
      case OP.READONLY_BUFFER: stack.push(pop()); break
      case OP.EMPTY_TUPLE: stack.push(Object.freeze([])); break
      case OP.TUPLE: { const items = Object.freeze(popMark()); stack.push(items); break }
      case OP.TUPLE1: stack.push(Object.freeze([pop()])); break
      case OP.TUPLE2: { const b = pop(); const a = pop(); stack.push(Object.freeze([a, b])); break }
      case OP.TUPLE3: { const c = pop(); const b = pop(); const a = pop(); stack.push(Object.freeze([a, b, c])); break }
      case OP.EMPTY_LIST: stack.push([]); break
      case OP.LIST: { const items = popMark(); stack.push(items); break }
      case OP.APPEND: { const item = pop(); appendTo(top(), [item]); break }
      case OP.APPENDS: { const items = popMark(); appendTo(top(), items); break }
      case OP.EMPTY_DICT: stack.push(new Map()); break
      case OP.DICT: { const map = new Map<Item, Item>(); setItems(map, popMark()); stack.push(map); break }
      case OP.SETITEM: { const value = pop(); const key = pop(); setItems(top(), [key, value]); break }
      case OP.SETITEMS: { const items = popMark(); setItems(top(), items); break }
      case OP.EMPTY_SET: stack.push(new Set()); break
      case OP.ADDITEMS: {
        const items = popMark()
        const set = top()
        if (!(set instanceof Set) || Object.isFrozen(set)) throw new PickleError('ADDITEMS target is not a set')
        for (const item of items) (set as Set<Item>).add(item)
        break
      }
      case OP.FROZENSET: { const set = Object.freeze(new Set(popMark())); stack.push(set); break }
      case OP.GLOBAL: { const module = r.line(); const name = r.line(); stack.push(resolveGlobal(module, name)); break }
      case OP.STACK_GLOBAL: {
        const name = pop()
        const module = pop()
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL needs two str')
        stack.push(resolveGlobal(module, name))
        break
      }
      case OP.REDUCE: {
        const args = pop()
        const fn = pop()
        if (!(fn instanceof Callable) || !Array.isArray(args)) throw new PickleError('REDUCE needs a known global and a tuple')
        stack.push(fn.apply(args))
        break
      }
      default:
        throw new PickleError(`unsupported pickle opcode 0x${op.toString(16)}`)
    }
  }
  throw new PickleError('pickle data has no STOP')
}

/** Turns parse-time shapes into session values: str-keyed dicts become plain objects. */
function finalize (item: Item, seen: Map<object, SessionValue>, depth: number): SessionValue {
  if (item === null || typeof item !== 'object' || item instanceof Uint8Array ||
    item instanceof PyDatetime || item instanceof PyDate) {
    return item
  }
  if (depth > MAX_DEPTH) throw new PickleError('session data is nested too deeply')
  const known = seen.get(item)
  if (known !== undefined) return known
  if (item instanceof Callable || item instanceof Timedelta || item instanceof Timezone) {
    throw new PickleError('a bare callable, timedelta or timezone is not session data')
  }
  if (Array.isArray(item)) {
    const out: SessionValue[] = []
    seen.set(item, out)
    for (const element of item) out.push(finalize(element, seen, depth + 1))
    return Object.isFrozen(item) ? Object.freeze(out) : out
  }
  if (item instanceof Set) {
    const out = new Set<SessionValue>()
    seen.set(item, out)
    for (const element of item) out.add(finalize(element, seen, depth + 1))
    return Object.isFrozen(item) ? Object.freeze(out) : out
  }
  if (!(item instanceof Map)) throw new PickleError('unexpected object in pickle data')
  let stringKeys = true
  for (const key of item.keys()) {
    if (typeof key !== 'string') { stringKeys = false; break }
  }
  if (stringKeys) {
    const out: Record<string, SessionValue> = {}
    seen.set(item, out)
    for (const [key, value] of item) setOwn(out, key as string, finalize(value, seen, depth + 1))
    return out
  }
  const out = new Map<SessionValue, SessionValue>()
  seen.set(item, out)
  for (const [key, value] of item) out.set(finalize(key, seen, depth + 1), finalize(value, seen, depth + 1))
  return out
}

/** Assigns without ever reaching a setter: a `__proto__` key stays an ordinary key. */
export function setOwn (target: Record<string, SessionValue>, key: string, value: SessionValue): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
  } else {
    target[key] = value
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

class Writer {
  #chunks: Buffer[] = []
  #current = Buffer.allocUnsafe(256)
  #pos = 0

  #ensure (n: number): void {
    if (this.#pos + n <= this.#current.length) return
    this.#chunks.push(this.#current.subarray(0, this.#pos))
    this.#current = Buffer.allocUnsafe(Math.max(256, n))
    this.#pos = 0
  }

  op (code: number): void { this.#ensure(1); this.#current[this.#pos++] = code }
  u8 (n: number): void { this.#ensure(1); this.#current[this.#pos++] = n }
  u16 (n: number): void { this.#ensure(2); this.#pos = this.#current.writeUInt16LE(n, this.#pos) }
  i32 (n: number): void { this.#ensure(4); this.#pos = this.#current.writeInt32LE(n, this.#pos) }
  u32 (n: number): void { this.#ensure(4); this.#pos = this.#current.writeUInt32LE(n, this.#pos) }
  u64 (n: number): void { this.#ensure(8); this.#pos = this.#current.writeBigUInt64LE(BigInt(n), this.#pos) }
  f64 (n: number): void { this.#ensure(8); this.#pos = this.#current.writeDoubleBE(n, this.#pos) }
  raw (bytes: Uint8Array): void {
    this.#ensure(bytes.length)
    this.#current.set(bytes, this.#pos)
    this.#pos += bytes.length
  }

  finish (): Buffer {
    this.#chunks.push(this.#current.subarray(0, this.#pos))
    return Buffer.concat(this.#chunks)
  }
}

const UINT8_MAX = 0xff
const UINT16_MAX = 0xffff
const INT32_MIN = -0x8000_0000
const INT32_MAX = 0x7fff_ffff
const UINT32_MAX = 0xffff_ffff

function writeBigInt (w: Writer, value: bigint): void {
  let n = 1
  while (value < -(1n << BigInt(8 * n - 1)) || value >= (1n << BigInt(8 * n - 1))) n++
  let unsigned = value < 0n ? value + (1n << BigInt(8 * n)) : value
  if (value === 0n) n = 0
  if (n <= UINT8_MAX) {
    w.op(OP.LONG1)
    w.u8(n)
  } else {
    w.op(OP.LONG4)
    w.i32(n)
  }
  for (let i = 0; i < n; i++) {
    w.u8(Number(unsigned & 0xffn))
    unsigned >>= 8n
  }
}

function writeInt (w: Writer, value: number): void {
  if (value >= 0 && value <= UINT8_MAX) { w.op(OP.BININT1); w.u8(value) } else if (value >= 0 && value <= UINT16_MAX) {
    w.op(OP.BININT2)
    w.u16(value)
  } else if (value >= INT32_MIN && value <= INT32_MAX) { w.op(OP.BININT); w.i32(value) } else writeBigInt(w, BigInt(value))
}

function writeStr (w: Writer, value: string): void {
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length <= UINT8_MAX) { w.op(OP.SHORT_BINUNICODE); w.u8(bytes.length) } else if (bytes.length <= UINT32_MAX) {
    w.op(OP.BINUNICODE)
    w.u32(bytes.length)
  } else { w.op(OP.BINUNICODE8); w.u64(bytes.length) }
  w.raw(bytes)
}

function writeBytes (w: Writer, bytes: Uint8Array): void {
  if (bytes.length <= UINT8_MAX) { w.op(OP.SHORT_BINBYTES); w.u8(bytes.length) } else if (bytes.length <= UINT32_MAX) {
    w.op(OP.BINBYTES)
    w.u32(bytes.length)
  } else { w.op(OP.BINBYTES8); w.u64(bytes.length) }
  w.raw(bytes)
}

function writeGlobal (w: Writer, module: string, name: string): void {
  writeStr(w, module)
  writeStr(w, name)
  w.op(OP.STACK_GLOBAL)
}

function writeTimezone (w: Writer, offsetMicroseconds: number, name: string | null): void {
  writeGlobal(w, 'datetime', 'timezone')
  writeGlobal(w, 'datetime', 'timedelta')
  // timedelta normalises to days, 0 <= seconds < 86400, 0 <= microseconds < 10^6.
  const us = ((offsetMicroseconds % 1_000_000) + 1_000_000) % 1_000_000
  const totalSeconds = (offsetMicroseconds - us) / 1_000_000
  const seconds = ((totalSeconds % 86_400) + 86_400) % 86_400
  const days = (totalSeconds - seconds) / 86_400
  w.op(OP.MARK)
  writeInt(w, days)
  writeInt(w, seconds)
  writeInt(w, us)
  w.op(OP.TUPLE)
  w.op(OP.REDUCE)
  if (name === null) w.op(OP.TUPLE1)
  else { writeStr(w, name); w.op(OP.TUPLE2) }
  w.op(OP.REDUCE)
}

function writeDatetime (w: Writer, d: PyDatetime): void {
  writeGlobal(w, 'datetime', 'datetime')
  const state = Buffer.from([d.year >> 8, d.year & 0xff, d.month | (d.fold === 1 ? 0x80 : 0), d.day, d.hour,
    d.minute, d.second, (d.microsecond >> 16) & 0xff, (d.microsecond >> 8) & 0xff, d.microsecond & 0xff])
  writeBytes(w, state)
  if (d.utcOffsetMicroseconds === null) w.op(OP.TUPLE1)
  else { writeTimezone(w, d.utcOffsetMicroseconds, d.tzName); w.op(OP.TUPLE2) }
  w.op(OP.REDUCE)
}

function isPlainObject (value: object): value is Record<string, SessionValue> {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function writeValue (w: Writer, value: unknown, depth: number, path: string): void {
  if (depth > MAX_DEPTH) throw new PickleError(`${path} is nested too deeply`)
  switch (typeof value) {
    case 'string': writeStr(w, value); return
    case 'boolean': w.op(value ? OP.NEWTRUE : OP.NEWFALSE); return
    case 'bigint': writeBigInt(w, value); return
    case 'number':
      if (Number.isSafeInteger(value)) writeInt(w, value)
      else { w.op(OP.BINFLOAT); w.f64(value) }
      return
    case 'object': break
    default: throw new PickleError(`${path} is a ${typeof value}, which a session cannot hold`)
  }
  if (value === null) { w.op(OP.NONE); return }
  if (value instanceof Uint8Array) { writeBytes(w, value); return }
  if (value instanceof PyDatetime) { writeDatetime(w, value); return }
  if (value instanceof PyDate) {
    writeGlobal(w, 'datetime', 'date')
    writeBytes(w, Buffer.from([value.year >> 8, value.year & 0xff, value.month, value.day]))
    w.op(OP.TUPLE1)
    w.op(OP.REDUCE)
    return
  }
  if (Array.isArray(value)) {
    const frozen = Object.isFrozen(value)
    if (frozen && value.length === 0) { w.op(OP.EMPTY_TUPLE); return }
    if (!frozen) w.op(OP.EMPTY_LIST)
    w.op(OP.MARK)
    value.forEach((item, i) => writeValue(w, item, depth + 1, `${path}[${i}]`))
    w.op(frozen ? OP.TUPLE : OP.APPENDS)
    return
  }
  if (value instanceof Set) {
    const frozen = Object.isFrozen(value)
    if (!frozen) w.op(OP.EMPTY_SET)
    w.op(OP.MARK)
    for (const item of value) writeValue(w, item, depth + 1, `${path}{}`)
    w.op(frozen ? OP.FROZENSET : OP.ADDITEMS)
    return
  }
  if (value instanceof Map) {
    w.op(OP.EMPTY_DICT)
    w.op(OP.MARK)
    for (const [key, item] of value) {
      writeValue(w, key, depth + 1, `${path} key`)
      writeValue(w, item, depth + 1, `${path}[${String(key)}]`)
    }
    w.op(OP.SETITEMS)
    return
  }
  if (isPlainObject(value)) {
    w.op(OP.EMPTY_DICT)
    w.op(OP.MARK)
    for (const key of Object.keys(value)) {
      writeStr(w, key)
      writeValue(w, value[key], depth + 1, `${path}.${key}`)
    }
    w.op(OP.SETITEMS)
    return
  }
  throw new PickleError(`${path} is a ${value.constructor?.name ?? 'object'}, which a session cannot hold`)
}

/**
 * Writes a value as a protocol 4 pickle. Integers that are safe JavaScript integers and bigints
 * become Python ints; every other number becomes a float (so a float like 2.0 read from legacy
 * comes back as the int 2).
 */
export function pickle (value: SessionValue): Buffer {
  const w = new Writer()
  w.op(OP.PROTO)
  w.u8(WRITE_PROTOCOL)
  writeValue(w, value, 0, 'session')
  w.op(OP.STOP)
  return w.finish()
}
