// The dispatch forwarder's own duties: legacy's response headers rewritten on the raw list undici
// hands over, and the upstream request stopped when the client goes away mid-answer.
import t from 'tap'
import { Client } from 'undici'
import { endToEndRawResponseHeaders } from '../../legacy-adapter/headers.ts'
import { startProxy, waitFor } from '../helpers/proxy-kit.ts'

const raw = (...pairs: string[]): Buffer[] => pairs.map((part) => Buffer.from(part, 'latin1'))

t.test('hop-by-hop headers and those Connection names are dropped; the rest keep order, lower-cased', async (t) => {
  const kept = endToEndRawResponseHeaders(raw(
    'Content-Type', 'text/html', 'Connection', 'keep-alive, X-Private', 'Keep-Alive', 'timeout=5',
    'Transfer-Encoding', 'chunked', 'X-Private', 'secret', 'Vary', 'Accept', 'Vary', 'Cookie'
  ), undefined, undefined)
  t.same(kept, ['content-type', 'text/html', 'vary', 'Accept', 'vary', 'Cookie'])
})

t.test('header values come back byte for byte, latin1 included', async (t) => {
  const value = Buffer.from([0x61, 0xe9, 0xff, 0x20, 0x7e])
  const kept = endToEndRawResponseHeaders([Buffer.from('X-Name'), value], undefined, undefined)
  t.same(Buffer.from(kept[1] as string, 'latin1'), value)
})

t.test('legacy cannot set the served-by header ficus sets, and its session cookie is made host-only', async (t) => {
  const kept = endToEndRawResponseHeaders(raw(
    'X-Served-By', 'new', 'Set-Cookie', 'session=abc; Domain=.example.org; Path=/', 'Set-Cookie', 'other=1; Domain=.example.org'
  ), 'x-served-by', 'session')
  t.same(kept, ['set-cookie', 'session=abc; Path=/', 'set-cookie', 'other=1; Domain=.example.org'])
})

t.test('a client that goes away mid-answer stops legacy\'s request', async (t) => {
  const proxy = await startProxy(t)
  let legacyClosed = false
  proxy.legacy.handle(({ res }) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.write(Buffer.alloc(1024, 1))
    // Never ends by itself: only ficus closing the upstream request ends it.
    res.on('close', () => { legacyClosed = true })
  })
  const client = new Client(proxy.origin)
  t.teardown(() => client.destroy())
  const response = await client.request({ method: 'GET', path: '/slow-download', headers: { host: 'school-b.localhost' } })
  t.equal(response.statusCode, 200)
  for await (const chunk of response.body) {
    t.ok((chunk as Buffer).length > 0, 'the first bytes arrived')
    break
  }
  await client.destroy()
  await waitFor(() => legacyClosed, 5_000, 'legacy\'s response to be closed')
  t.ok(legacyClosed, 'legacy saw its request end')
})
