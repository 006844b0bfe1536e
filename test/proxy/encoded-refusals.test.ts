// Every encoding of a refused character is refused (README "Route matching"): a percent-escape
// that decodes to a byte ficus refuses raw is a 400 like the raw byte, and so is a double-encoded
// escape; what is forwarded reads as the same path whether legacy decodes it once or twice, so the
// flag decision taken on it holds for legacy too. Inputs are generated; the edge is real HTTP in
// front of the recording legacy.
import t from 'tap'
import fc from 'fast-check'
import { canonicalizeUrl } from '../../request-path/canonical-path.ts'
import { rawRequest, startProxy, type ProxyKit } from '../helpers/proxy-kit.ts'

type Tap = { teardown (fn: () => unknown): void }

// Bytes the canonical rules refuse raw inside a segment (`/` separates segments, so its escape
// would join two).
const REFUSED_BYTES: readonly number[] = [
  ...Array.from({ length: 0x21 }, (_, i) => i), 0x7f,
  ';', '#', '?', '\\', '/'
].map((b) => typeof b === 'number' ? b : b.charCodeAt(0))

/** Every spelling of one character: its own letter case when a letter, and escapes of it in both hex cases. */
function caseVariants (text: string): string[] {
  let variants = ['']
  for (const char of text) {
    const options = /[a-f]/i.test(char) ? [char.toLowerCase(), char.toUpperCase()] : [char]
    variants = variants.flatMap((prefix) => options.map((option) => prefix + option))
  }
  return variants
}

function hexPair (byte: number): string {
  return byte.toString(16).padStart(2, '0').toUpperCase()
}

/** A hex digit written as its own escape: `B` -> `%42`, `b` -> `%62`. */
function escapedDigit (digit: string): string {
  return '%' + hexPair(digit.charCodeAt(0))
}

/**
 * Every percent-spelling of `byte` a legacy server could decode back to it: single escapes in
 * every letter case, double escapes through `%25` (hex digits raw or escaped themselves), and a
 * triple one.
 */
function spellingsOf (byte: number): string[] {
  const pairs = caseVariants(hexPair(byte))
  const spellings = new Set<string>()
  for (const pair of pairs) {
    const [high = '', low = ''] = pair
    spellings.add('%' + pair)
    spellings.add('%25' + pair)
    spellings.add('%25' + escapedDigit(high) + low)
    spellings.add('%25' + high + escapedDigit(low))
    spellings.add('%25' + escapedDigit(high) + escapedDigit(low))
    spellings.add('%2525' + pair)
  }
  return [...spellings]
}

const ALL_SPELLINGS = REFUSED_BYTES.flatMap((byte) => spellingsOf(byte).map((spelling) => ({ byte, spelling })))

/** Decodes every well-formed escape once and leaves malformed ones alone, as WSGI servers do. */
function decodeOnce (path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}

// Characters that, once decoded, would make legacy read another path than the one decided on.
const REFUSED_AFTER_DECODING = /[\x00-\x20\x7f;#?\\]/

// Safe text to put around a spelling: unreserved characters, slashes and escapes ficus keeps.
const SAFE_TEXT = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '_', '~', '/', '%C3%A9', '%40', '%7E'), maxLength: 8 })

t.test('every escaped spelling of a refused byte is refused, wherever it stands in the path', async (t) => {
  t.ok(ALL_SPELLINGS.length > 300, `${ALL_SPELLINGS.length} spellings of ${REFUSED_BYTES.length} bytes`)
  for (const { byte, spelling } of ALL_SPELLINGS) {
    fc.assert(fc.property(SAFE_TEXT, SAFE_TEXT, (before, after) => {
      const result = canonicalizeUrl(`/x${before}${spelling}${after}?q=1`)
      if (result.ok) throw new Error(`0x${hexPair(byte)} spelled ${spelling} was accepted as ${result.url}`)
    }), { numRuns: 15 })
  }
  t.pass('none accepted')
})

// Paths assembled from the pieces that matter: escapes (single, double, of hex digits), the refused
// characters raw, dots, slashes and letters.
const PATH_PIECE = fc.constantFrom(
  '/', 'a', 'B', 'e', 'f', '2', '3', '5', '.', '~', '%', '%25', '%2e', '%2E', '%3B', '%3b', '%20', '%41', '%61', '%7e',
  '%32', '%35', '%33', '%42', '%62', '%C3%A9', '%c3%a9', '%00', '%0a', ';', ' ', '#', '\\', '%5C', '%2F', '%23', '%3F', '%40', '%7B'
)
const GENERATED_PATH = fc.array(PATH_PIECE, { minLength: 1, maxLength: 12 }).map((pieces) => '/' + pieces.join(''))
// On the wire a raw space ends the request target: that is request-line syntax, not a path.
const GENERATED_TARGET = GENERATED_PATH.filter((path) => !path.includes(' '))

t.test('an accepted path reads the same after one or two decodings, with nothing refused in it', async (t) => {
  let accepted = 0
  fc.assert(fc.property(GENERATED_PATH, (path) => {
    const result = canonicalizeUrl(path)
    if (!result.ok) return
    accepted++
    const once = decodeOnce(result.url)
    if (REFUSED_AFTER_DECODING.test(once)) throw new Error(`${path} -> ${result.url} decodes to ${JSON.stringify(once)}`)
    if (decodeOnce(once) !== once) throw new Error(`${path} -> ${result.url} reads ${once} decoded once, ${decodeOnce(once)} twice`)
    if (once.split('/').some((segment) => segment === '.' || segment === '..')) throw new Error(`${path} -> ${result.url} has a dot-segment once decoded`)
    const again = canonicalizeUrl(result.url)
    if (!again.ok || again.url !== result.url) throw new Error(`${path}: the canonical form ${result.url} is not canonical`)
  }), { numRuns: 20_000 })
  t.ok(accepted > 1_000, `${accepted} of 20000 generated paths accepted and checked`)
})

async function sendRaw (t: Tap, proxy: ProxyKit, target: string, host: string) {
  return rawRequest(t, proxy.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`)
}

t.test('over HTTP, every escaped spelling of every refused byte is a 400 and reaches no legacy', async (t) => {
  const proxy = await startProxy(t)
  const codes = new Map<string, number>()
  const contexts = fc.sample(fc.tuple(SAFE_TEXT, SAFE_TEXT), { numRuns: ALL_SPELLINGS.length, seed: 10 })
  for (const [index, { spelling }] of ALL_SPELLINGS.entries()) {
    const [before, after] = contexts[index] ?? ['', '']
    const target = index % 2 === 0 ? `/attendance${spelling}` : `/reports${before}${spelling}${after}`
    const answer = await sendRaw(t, proxy, target, index % 3 === 0 ? 'school-a.localhost' : 'school-b.localhost')
    const code = answer.statusCode === 400 ? (JSON.parse(answer.body.toString()) as { error: { code: string } }).error.code : `status ${answer.statusCode} for ${target}`
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  t.same([...codes.entries()], [['FICUS_ERR_PATH_INVALID', ALL_SPELLINGS.length]], 'every one refused as an invalid path')
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received none of them')
})

// A spelling of `/attendance`: each character raw, escaped (either hex case), double-encoded, or
// with its letter case changed; slashes doubled.
const ATTENDANCE_SPELLING = fc.array(fc.tuple(fc.nat(19), fc.boolean()), { minLength: 10, maxLength: 10 }).chain((choices) =>
  fc.constantFrom('/', '//', '/%2e/', '/').map((lead) => lead + [...'attendance'].map((char, i) => {
    const [how, upper] = choices[i] ?? [0, false]
    const c = upper ? char.toUpperCase() : char
    const hex = hexPair(c.charCodeAt(0))
    if (how < 12) return c
    if (how < 15) return '%' + hex
    if (how < 18) return '%' + hex.toLowerCase()
    if (how === 18) return '%25' + hex
    return '%25' + escapedDigit(hex[0] ?? '') + (hex[1] ?? '')
  }).join('') + (choices[0]?.[1] === true ? '/' : '')))

t.test('no spelling of a migrated route reaches legacy on a school where it is migrated', async (t) => {
  const proxy = await startProxy(t)
  const outcomes = { new: 0, refused: 0 }
  await fc.assert(fc.asyncProperty(ATTENDANCE_SPELLING, async (target) => {
    const answer = await sendRaw(t, proxy, target, 'school-a.localhost')
    if (answer.statusCode === 400) { outcomes.refused++; return }
    if (answer.statusCode !== 200 || answer.values('x-served-by')[0] !== 'new') throw new Error(`${target}: ${answer.statusCode} from ${answer.values('x-served-by').join()}`)
    outcomes.new++
  }), { numRuns: 300 })
  t.ok(outcomes.new > 0 && outcomes.refused > 0, `served by new ${outcomes.new}, refused ${outcomes.refused}`)
  t.same(proxy.legacy.requests.map((r) => r.requestLine), [], 'legacy received none')
})

t.test('where the route is not migrated, legacy gets a target that decodes to one path only', async (t) => {
  const proxy = await startProxy(t)
  let forwarded = 0
  await fc.assert(fc.asyncProperty(fc.oneof(ATTENDANCE_SPELLING, GENERATED_TARGET), async (target) => {
    const before = proxy.legacy.requests.length
    const answer = await sendRaw(t, proxy, target, 'school-b.localhost')
    if (answer.statusCode === 400) {
      if (proxy.legacy.requests.length !== before) throw new Error(`${target} refused but forwarded`)
      return
    }
    const received = proxy.legacy.requests[before]?.target ?? ''
    const expected = canonicalizeUrl(target)
    if (!expected.ok || received !== expected.url) throw new Error(`${target} reached legacy as ${received}`)
    const once = decodeOnce(received)
    if (REFUSED_AFTER_DECODING.test(once) || decodeOnce(once) !== once) throw new Error(`${target} reached legacy as ${received}, ambiguous once decoded`)
    forwarded++
  }), { numRuns: 300 })
  t.ok(forwarded > 0, `${forwarded} forwarded, each checked`)
})
