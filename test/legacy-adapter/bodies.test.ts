// Bodies reach legacy, and come back from it, byte for byte and streamed: no re-serialising of
// JSON or forms, no buffering of large uploads or downloads.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { Client } from 'undici'
import { startProxy, waitFor } from '../helpers/proxy-kit.ts'

const MB = 1024 * 1024
const CHUNK = 64 * 1024
// Bounded wait for "legacy (or the client) has started receiving": generous for a loaded machine.
const STREAM_WAIT_MS = 15_000

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function writeAll (res: ServerResponse, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += CHUNK) {
    if (!res.write(data.subarray(at, at + CHUNK))) await new Promise((resolve) => res.once('drain', resolve))
  }
}

t.test('a 1 MB random binary body is byte-identical both ways', async (t) => {
  const proxy = await startProxy(t)
  const upload = randomBytes(MB)
  const download = randomBytes(MB)
  proxy.legacy.handle(async ({ res, record }) => {
    await record.ended
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': download.length })
    res.end(download)
  })
  const answer = await proxy.send({ method: 'POST', path: '/upload', host: 'school-b.localhost', headers: { 'content-type': 'application/octet-stream' }, body: upload })
  const record = proxy.legacy.sole()
  t.equal(record.bodyLength, upload.length)
  t.equal(record.bodySha256, sha256(upload), 'legacy received the exact bytes')
  t.same(record.values('content-length'), [String(upload.length)])
  t.equal(answer.statusCode, 200)
  t.equal(sha256(answer.body), sha256(download), 'the client received the exact bytes')
})

t.test('a chunked request body and a chunked response body are byte-identical', async (t) => {
  const proxy = await startProxy(t)
  const parts = [randomBytes(10), randomBytes(70_000), Buffer.from('\r\n0\r\n\r\n'), randomBytes(1)]
  const responseParts = [Buffer.from('first '), randomBytes(100_000), Buffer.from('0\r\n\r\n'), Buffer.from(' last')]
  proxy.legacy.handle(async ({ res, record }) => {
    await record.ended
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    for (const part of responseParts) await writeAll(res, part)
    res.end()
  })
  async function * body (): AsyncGenerator<Buffer> { for (const part of parts) yield part }
  const answer = await proxy.send({ method: 'PUT', path: '/files/blob', host: 'school-b.localhost', body: Readable.from(body()) })
  const record = proxy.legacy.sole()
  t.same(record.values('transfer-encoding'), ['chunked'], 'legacy received a chunked body')
  t.same(record.values('content-length'), [])
  t.equal(record.bodySha256, sha256(Buffer.concat(parts)))
  t.equal(answer.header('transfer-encoding'), 'chunked', 'the client received a chunked body')
  t.equal(sha256(answer.body), sha256(Buffer.concat(responseParts)))
})

t.test('a 10 MB body streams both ways without being buffered whole', async (t) => {
  const proxy = await startProxy(t)
  const upload = randomBytes(10 * MB)
  const download = randomBytes(10 * MB)
  const tail = MB
  let clientReceived = 0
  proxy.legacy.handle(async ({ res, record }) => {
    await record.ended
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': download.length })
    await writeAll(res, download.subarray(0, download.length - tail))
    // The last megabyte is held back until the client has bytes: a proxy that waited for the
    // whole answer before sending any of it would never deliver it.
    await waitFor(() => clientReceived > 0, STREAM_WAIT_MS, 'the client to receive the first bytes of the answer')
    res.end(download.subarray(download.length - tail))
  })

  async function * body (): AsyncGenerator<Buffer> {
    for (let at = 0; at < upload.length - tail; at += CHUNK) yield upload.subarray(at, Math.min(at + CHUNK, upload.length - tail))
    // Likewise the last megabyte of the upload waits until legacy has bytes.
    await waitFor(() => (proxy.legacy.requests[0]?.bodyLength ?? 0) > 0, STREAM_WAIT_MS, 'legacy to receive the first bytes of the upload')
    yield upload.subarray(upload.length - tail)
  }

  const client = new Client(proxy.origin)
  t.teardown(() => client.destroy())
  const response = await client.request({ method: 'POST', path: '/big', headers: { host: 'school-b.localhost', 'content-length': String(upload.length) }, body: Readable.from(body()) })
  const hash = createHash('sha256')
  for await (const chunk of response.body) {
    clientReceived += (chunk as Buffer).length
    hash.update(chunk as Buffer)
  }
  const record = proxy.legacy.sole()
  t.equal(record.bodyLength, upload.length)
  t.equal(record.bodySha256, sha256(upload), 'legacy received the exact 10 MB')
  t.equal(response.statusCode, 200)
  t.equal(clientReceived, download.length)
  t.equal(hash.digest('hex'), sha256(download), 'the client received the exact 10 MB')
})

t.test('a urlencoded form arrives exactly as sent', async (t) => {
  const proxy = await startProxy(t)
  const form = 'user=J%C3%B6rg+M&user=second&empty=&flag&plus=a%2Bb&space=a+b%20c&order=z&order=a'
  await proxy.send({ method: 'POST', path: '/sign-in', host: 'school-b.localhost', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form })
  const record = proxy.legacy.sole()
  t.equal(record.body?.toString('latin1'), form)
  t.same(record.values('content-type'), ['application/x-www-form-urlencoded'])
})

t.test('JSON with duplicate keys and odd spacing arrives exactly as sent', async (t) => {
  const proxy = await startProxy(t)
  const json = '{"a":1,"a":2,  "b" : "\\u00e9\\/" ,"n":1.0e10,"big":12345678901234567890,"nested":{"x":[1 ,2]}}\n'
  for (const [method, path] of [['POST', '/api/marks'], ['PATCH', '/api/marks/1'], ['POST', '/attendance']]) {
    await proxy.send({ method, path, host: 'school-a.localhost', headers: { 'content-type': 'application/json; charset=utf-8' }, body: json })
  }
  t.equal(proxy.legacy.requests.length, 3)
  for (const record of proxy.legacy.requests) {
    t.equal(record.body?.toString('utf8'), json, `${record.method} ${record.target}`)
    t.same(record.values('content-type'), ['application/json; charset=utf-8'])
  }
})

t.test('an empty body stays empty, with its Content-Length: 0', async (t) => {
  const proxy = await startProxy(t)
  await proxy.send({ method: 'POST', path: '/ping', host: 'school-b.localhost', headers: { 'content-length': '0' } })
  const record = proxy.legacy.sole()
  t.equal(record.bodyLength, 0)
  t.same(record.values('content-length'), ['0'])
})
