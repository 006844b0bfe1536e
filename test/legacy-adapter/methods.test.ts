import t from 'tap'
import { METHODS } from 'node:http'
import { startProxy } from '../helpers/proxy-kit.ts'

t.test('every method but TRACE and CONNECT (refused at the edge) reaches legacy as sent, WebDAV\'s included', async (t) => {
  const proxy = await startProxy(t)
  const methods = METHODS.filter((method) => method !== 'CONNECT' && method !== 'TRACE')
  t.ok(methods.includes('PROPFIND') && methods.includes('MKCOL') && methods.includes('PATCH'))
  for (const method of methods) {
    const before = proxy.legacy.requests.length
    const answer = await proxy.send({ method, path: '/dav/folder/?depth=1', host: 'school-b.localhost' })
    t.equal(answer.header('x-served-by'), 'legacy', method)
    t.equal(proxy.legacy.requests[before]?.requestLine, `${method} /dav/folder/?depth=1 HTTP/1.1`, method)
  }
})

t.test('a PROPFIND body and its WebDAV headers arrive as sent', async (t) => {
  const proxy = await startProxy(t)
  const xml = '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
  await proxy.send({ method: 'PROPFIND', path: '/dav/reports/', host: 'school-b.localhost', headers: { depth: '1', 'content-type': 'application/xml' }, body: xml })
  const record = proxy.legacy.sole()
  t.equal(record.body?.toString(), xml)
  t.same(record.values('depth'), ['1'])
})

t.test('a body on DELETE or OPTIONS is forwarded too', async (t) => {
  const proxy = await startProxy(t)
  for (const method of ['DELETE', 'OPTIONS']) {
    await proxy.send({ method, path: '/items/7', host: 'school-b.localhost', headers: { 'content-type': 'application/json' }, body: '{"why":"duplicate"}' })
  }
  t.same(proxy.legacy.requests.map((record) => record.body?.toString()), ['{"why":"duplicate"}', '{"why":"duplicate"}'])
})
