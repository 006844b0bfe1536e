// Not a product someone deploys: the shape proposed for ficus's legacy adapter, measured so the
// proposal rests on a number. fastify keeps routing, hooks and onResponse; the forwarding itself
// is undici's stream API writing straight into the hijacked response, with no Readable in between.
import Fastify from 'fastify'
import { Pool } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import { baselineArgs, exitOnSignal } from './args.ts'

const POOL_CONNECTIONS = 128
const SCHOOLS = 1_500
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

const { port, upstream } = baselineArgs(process.env)
const pool = new Pool(upstream, { connections: POOL_CONNECTIONS })
const schools = new Set<string>()
for (let i = 0; i < SCHOOLS; i++) schools.add(`school-${i}`)

function endToEnd<T extends Record<string, unknown>> (headers: T): T {
  for (const name of HOP_BY_HOP) delete headers[name]
  return headers
}

const app = Fastify({ logger: false })
app.addHook('onRequest', (request, reply, done) => {
  const host = request.headers.host ?? ''
  const dot = host.indexOf('.')
  if (!schools.has(dot === -1 ? host : host.slice(0, dot))) return void reply.code(404).send({ error: 'unknown school' })
  reply.hijack()
  const res = reply.raw
  const headers: IncomingHttpHeaders = endToEnd({ ...request.headers })
  headers['x-forwarded-for'] = request.ip
  pool.stream({ path: request.url, method: request.method as 'GET', headers: headers as Record<string, string>, body: null }, ({ statusCode, headers: upstreamHeaders }) => {
    const out = endToEnd(upstreamHeaders)
    out['x-served-by'] = 'legacy'
    res.writeHead(statusCode, out)
    return res
  }).catch((error: Error) => {
    if (!res.headersSent) res.writeHead(502).end(error.message)
    else res.destroy(error)
  })
  done()
})
app.get('/*', async () => { throw new Error('unreachable: onRequest answers') })
await app.listen({ port, host: '127.0.0.1' })
exitOnSignal(async () => {
  await app.close()
  await pool.close()
})
