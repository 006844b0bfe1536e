// @fastify/http-proxy as its README shows it: one upstream, every path forwarded.
import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { baselineArgs, exitOnSignal } from './args.ts'

const { port, upstream } = baselineArgs(process.env)
const app = Fastify({ logger: false })
await app.register(httpProxy, { upstream })
await app.listen({ port, host: '127.0.0.1' })
exitOnSignal(() => app.close())
