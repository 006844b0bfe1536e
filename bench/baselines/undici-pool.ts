// The Node floor: node:http in front of one undici Pool, headers copied minus hop-by-hop ones,
// the body streamed straight into the client's response. No framework, no routing.
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { Pool } from 'undici'
import { baselineArgs, exitOnSignal } from './args.ts'

const POOL_CONNECTIONS = 128
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

const { port, upstream } = baselineArgs(process.env)
const pool = new Pool(upstream, { connections: POOL_CONNECTIONS })

function endToEnd<T extends Record<string, unknown>> (headers: T): T {
  for (const name of HOP_BY_HOP) delete headers[name]
  return headers
}

const server = createServer((req, res) => {
  const headers: IncomingHttpHeaders = endToEnd({ ...req.headers })
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool.stream({
    path: req.url ?? '/',
    method: req.method as 'GET',
    headers: headers as Record<string, string>,
    body: hasBody ? req : null
  }, ({ statusCode, headers: upstreamHeaders }) => {
    res.writeHead(statusCode, endToEnd(upstreamHeaders))
    return res
  }).catch((error: Error) => {
    if (!res.headersSent) res.writeHead(502).end(error.message)
    else res.destroy(error)
  })
})
server.keepAliveTimeout = 72_000
server.listen(port, '127.0.0.1')
exitOnSignal(async () => {
  server.close()
  await pool.close()
})
