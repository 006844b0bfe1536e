// How a real WSGI legacy (Flask on werkzeug, test/fixtures/flask) reads what ficus now refuses or
// drops: sent to Flask directly, an escaped `;` or space is a `;` or space in its path, `%253B`
// a `%3B` that one more decoding turns into `;`, and `X_Forwarded_For` is its X-Forwarded-For.
// Through ficus, the same requests are refused or arrive without the folded header, and what is
// forwarded reads in Flask as the path the decision was taken on.
import t from 'tap'
import fc from 'fast-check'
import { canonicalizeUrl } from '../../request-path/canonical-path.ts'
import { startFlaskApp } from '../helpers/flask-app.ts'
import { rawRequest, startProxy, type RawResponse } from '../helpers/proxy-kit.ts'

type Tap = { teardown (fn: () => unknown): void }

interface WsgiView {
  readonly path: string
  readonly raw_uri: string
  readonly method: string
  readonly headers: Array<[string, string]>
}

async function get (t: Tap, port: number, target: string, headerLines: readonly string[] = []): Promise<RawResponse> {
  return rawRequest(t, port, [`GET ${target} HTTP/1.1`, 'Host: school-b.localhost', 'Accept: application/json', ...headerLines, 'Connection: close', '', ''].join('\r\n'))
}

function view (answer: RawResponse): WsgiView {
  if (answer.statusCode !== 200) throw new Error(`${answer.statusCode}: ${answer.body.toString().slice(0, 200)}`)
  return JSON.parse(answer.body.toString()) as WsgiView
}

function decodeOnce (path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
}

t.test('against Flask', async (t) => {
  const flask = await startFlaskApp(t, { redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0', keyPrefix: 'ficus-wsgi-reading:' })
  const flaskPort = Number(new URL(flask.url).port)
  const proxy = await startProxy(t, { env: { LEGACY_URL: flask.url } })

  // [character, its escapes]: what werkzeug decodes once, and what a second decoding would give.
  const REFUSED = [';', ' ', '\t', '#', '?', '\\']
  const SPELLING = fc.tuple(fc.constantFrom(...REFUSED), fc.boolean(), fc.boolean()).map(([char, lower, double]) => {
    const hex = char.charCodeAt(0).toString(16).padStart(2, '0')
    const escape = '%' + (lower ? hex.toLowerCase() : hex.toUpperCase())
    return { char, escape, spelling: double ? '%25' + escape.slice(1) : escape, double }
  })

  await t.test('werkzeug decodes the escapes ficus refuses back into the refused characters', async (t) => {
    await fc.assert(fc.asyncProperty(SPELLING, async ({ char, escape, spelling, double }) => {
      const target = `/wsgi/a${spelling}b`
      const read = view(await get(t, flaskPort, target)).path
      const expected = double ? `/wsgi/a${escape}b` : `/wsgi/a${char}b`
      if (read !== expected) throw new Error(`Flask read ${target} as ${JSON.stringify(read)}, not ${JSON.stringify(expected)}`)
      if (double && decodeOnce(read) !== `/wsgi/a${char}b`) throw new Error(`${read} does not decode to the refused character`)
      const through = await get(t, proxy.port, target)
      if (through.statusCode !== 400 || !through.body.toString().includes('FICUS_ERR_PATH_INVALID')) throw new Error(`${target} through ficus: ${through.statusCode}`)
    }), { numRuns: 40 })
    t.pass('each read by Flask as the refused character (or one decoding away from it), each refused by ficus')
  })

  await t.test('what ficus forwards, Flask reads as the path the decision was taken on, once decoded and again', async (t) => {
    const PIECE = fc.constantFrom('a', 'B', '-', '~', '/', '//', '%41', '%7e', '%2e', '.x', '%C3%A9', '%c3%a9', '%40', '%25', '%25zz', '%7B', '%2F', '%3B', '%20', '%2541')
    let forwarded = 0
    await fc.assert(fc.asyncProperty(fc.array(PIECE, { minLength: 1, maxLength: 6 }), async (pieces) => {
      const target = '/wsgi/' + pieces.join('')
      const canonical = canonicalizeUrl(target)
      const answer = await get(t, proxy.port, target)
      if (!canonical.ok) {
        if (answer.statusCode !== 400) throw new Error(`${target}: ${answer.statusCode}, expected 400`)
        return
      }
      const read = view(answer)
      const decided = Buffer.from(decodeOnce(canonical.url), 'latin1').toString('utf8')
      if (read.raw_uri !== canonical.url) throw new Error(`${target} reached Flask as ${read.raw_uri}, decided on ${canonical.url}`)
      if (read.path !== decided) throw new Error(`${target}: Flask read ${read.path}, ficus decided on ${decided}`)
      if (decodeOnce(read.path) !== read.path) throw new Error(`${target}: Flask's ${read.path} would read otherwise decoded again`)
      forwarded++
    }), { numRuns: 60 })
    t.ok(forwarded > 0, `${forwarded} forwarded and read alike`)
  })

  const SPOOFABLE = ['X-Forwarded-For', 'X-Real-IP', 'X-Forwarded-Host', 'X-Forwarded-Proto']
  // Spellings with at least one `_` where a `-` was, in any letter case.
  const FOLDED_NAME = fc.tuple(fc.constantFrom(...SPOOFABLE), fc.infiniteStream(fc.boolean()), fc.infiniteStream(fc.boolean())).map(([name, underscores, uppers]) => {
    const folded = [...name].map((char) => char === '-' && underscores.next().value === true ? '_' : char)
    if (!folded.includes('_')) folded[folded.indexOf('-')] = '_'
    return { name, spelled: folded.map((char) => uppers.next().value === true ? char.toUpperCase() : char.toLowerCase()).join('') }
  })

  await t.test('werkzeug reads an underscore header as the header ficus sets; through ficus it never arrives', async (t) => {
    await fc.assert(fc.asyncProperty(FOLDED_NAME, fc.ipV4(), async ({ name, spelled }, spoofed) => {
      const direct = view(await get(t, flaskPort, '/wsgi/whoami', [`${spelled}: ${spoofed}`]))
      const seen = direct.headers.find(([header]) => header.toLowerCase() === name.toLowerCase())
      if (seen?.[1] !== spoofed) throw new Error(`Flask read ${spelled} as ${JSON.stringify(seen)}, expected ${name}: ${spoofed}`)
      const through = view(await get(t, proxy.port, '/wsgi/whoami', [`${spelled}: ${spoofed}`]))
      const leaked = through.headers.filter(([, value]) => value.includes(spoofed))
      if (leaked.length > 0 && spoofed !== '127.0.0.1') throw new Error(`${spelled}: ${spoofed} reached Flask through ficus as ${JSON.stringify(leaked)}`)
      const forwardedFor = through.headers.find(([header]) => header === 'X-Forwarded-For')
      if (forwardedFor?.[1] !== '127.0.0.1') throw new Error(`X-Forwarded-For through ficus: ${JSON.stringify(forwardedFor)}`)
    }), { numRuns: 40 })
    t.pass('folded by werkzeug when sent directly, dropped by ficus')
  })

  await t.test('werkzeug merges X_Forwarded_For into a real X-Forwarded-For', async (t) => {
    const direct = view(await get(t, flaskPort, '/wsgi/merge', ['X-Forwarded-For: 10.0.0.1', 'X_Forwarded_For: 6.6.6.6']))
    t.same(direct.headers.filter(([header]) => header === 'X-Forwarded-For'), [['X-Forwarded-For', '10.0.0.1,6.6.6.6']])
    const through = view(await get(t, proxy.port, '/wsgi/merge', ['X-Forwarded-For: 10.0.0.1', 'X_Forwarded_For: 6.6.6.6']))
    t.same(through.headers.filter(([header]) => header === 'X-Forwarded-For'), [['X-Forwarded-For', '127.0.0.1']])
  })
})
