// Plain fastify + @fastify/reply-from, with the smallest routing a multi-school proxy needs:
// the school from the Host label, looked up in a table, then the route in a second table.
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import { baselineArgs, exitOnSignal } from './args.ts'

const SCHOOLS = 1_500
const { port, upstream } = baselineArgs(process.env)

const schools = new Map<string, { readonly id: string }>()
for (let i = 0; i < SCHOOLS; i++) schools.set(`school-${i}`, { id: `school-${i}` })
// First path segment -> which backend; everything in this baseline goes to the one upstream.
const routes = new Map<string, 'legacy'>([['bench', 'legacy'], ['attendance', 'legacy']])

const app = Fastify({ logger: false })
await app.register(replyFrom, { base: upstream, undici: { connections: 128 } })
app.get('/*', (request, reply) => {
  const host = request.headers.host ?? ''
  const dot = host.indexOf('.')
  const school = schools.get(dot === -1 ? host : host.slice(0, dot))
  if (school === undefined) return reply.code(404).send({ error: 'unknown school' })
  const slash = request.url.indexOf('/', 1)
  const route = routes.get(request.url.slice(1, slash === -1 ? undefined : slash))
  if (route === undefined) return reply.code(404).send({ error: 'unknown route' })
  return reply.from(request.url)
})
await app.listen({ port, host: '127.0.0.1' })
exitOnSignal(() => app.close())
