// WebSocket through ficus to a real `ws` legacy app: messages both ways unchanged (text and
// binary, 1 MiB frames), the same school, path and cookie rules as any request (another school's
// session cookie never reaches legacy), only upstreams declared to speak WebSocket get tunnels,
// a migrated route may take upgrades itself, idle tunnels close, the per-process cap holds, and
// on SIGTERM a real ficus process keeps tunnels through the drain, then closes them with a close
// handshake (1001) that never cuts a frame in two.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { startWsEchoApp, WriteGate } from '../helpers/ws-echo.ts'
import { startRecordingLegacy, waitFor } from '../helpers/recording-legacy.ts'
import { ATTENDANCE_FLAG, closedPort, DEFAULT_TENANTS, flagsOnFor, rawRequest, spawnFicus, startProxy, writeJson, type FicusProcess } from '../helpers/proxy-kit.ts'
import { signedInSessions } from '../helpers/signed-in.ts'
import { migratedRoute } from '../../core/route.ts'

const wsApp = await startWsEchoApp(t)
const zope = await startRecordingLegacy(t)
const sessions = await signedInSessions(t, ['school-a', 'school-b'])
const table = JSON.stringify({
  upstreams: { zope: { url: zope.url }, 'ws-app': { url: wsApp.url, upgrades: ['websocket'] } },
  routes: { '/live': 'ws-app' },
  default: 'zope'
})

// A migrated route that answers WebSocket itself, for the schools its flag is on for.
const newSide = new WebSocketServer({ noServer: true })
newSide.on('connection', (ws) => ws.send('from the new side'))
t.teardown(() => newSide.close())
const LIVE_NEW = migratedRoute({
  name: 'live.new',
  method: 'GET',
  url: '/live/new',
  flag: ATTENDANCE_FLAG,
  access: 'public',
  handler: async () => ({ plain: true }),
  upgrade: (request, socket, head) => newSide.handleUpgrade(request.raw, socket, head, (ws) => newSide.emit('connection', ws))
})

const proxy = await startProxy(t, { env: { ...sessions.env, LEGACY_UPSTREAMS: table, TUNNEL_MAX: '3' }, withSessions: true, routes: [LIVE_NEW] })

interface Opened { readonly ws: WebSocket, readonly messages: Array<{ data: Buffer, binary: boolean }> }

/** Opens a WebSocket through ficus; rejects with the status ficus answered when it refused. */
async function open (path: string, options: { host?: string, cookie?: string, port?: number } = {}): Promise<Opened> {
  const headers: Record<string, string> = { host: options.host ?? 'school-a.localhost' }
  if (options.cookie !== undefined) headers.cookie = options.cookie
  const ws = new WebSocket(`ws://127.0.0.1:${options.port ?? proxy.port}${path}`, { headers, maxPayload: 8 * 1024 * 1024 })
  const messages: Opened['messages'] = []
  ws.on('message', (data: Buffer, binary) => messages.push({ data, binary }))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_request, response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      response.once('end', () => reject(Object.assign(new Error(`refused ${response.statusCode ?? 0}`), { status: response.statusCode, body })))
    })
    ws.once('error', reject)
  })
  t.teardown(() => ws.terminate())
  return { ws, messages }
}

async function refusal (path: string, options: Parameters<typeof open>[1] = {}): Promise<{ status: number, body: string }> {
  try {
    await open(path, options)
  } catch (error) {
    const refused = error as { status?: number, body?: string }
    if (refused.status !== undefined) return { status: refused.status, body: refused.body ?? '' }
    throw error
  }
  throw new Error(`${path} was tunnelled`)
}

t.test('messages both ways unchanged: text, binary, 1 MiB frames', async (t) => {
  const { ws, messages } = await open('/live/chat?room=1&x=%27', { cookie: sessions.cookie('school-a') })
  const text = 'héllo, wörld ✓'
  const binary = randomBytes(1024 * 1024)
  const bigText = randomBytes(512 * 1024).toString('hex')
  ws.send(text)
  ws.send(binary)
  ws.send(bigText)
  await waitFor(() => messages.length === 3, 10_000, 'three echoes')
  t.same([messages[0]?.binary, messages[1]?.binary, messages[2]?.binary], [false, true, false], 'text stays text, binary stays binary')
  t.equal(messages[0]?.data.toString('utf8'), text)
  t.ok(messages[1]?.data.equals(binary), '1 MiB binary frame unchanged')
  t.equal(messages[2]?.data.toString('utf8'), bigText, '1 MiB text frame unchanged')
  const upgrade = wsApp.upgrades.at(-1)
  t.equal(upgrade?.url, '/live/chat?room=1&x=%27', 'legacy got the canonical path and the raw query')
  t.equal(upgrade?.headers.cookie, sessions.cookie('school-a'), "the school's own session cookie went through")
  t.equal(upgrade?.headers['x-forwarded-for'], '127.0.0.1', 'forwarding headers are set as for any request')
  t.equal(upgrade?.headers.host, 'school-a.localhost')
  ws.close(1000)
  await once(ws, 'close')
  const line = await proxy.waitForLog((l) => l.msg === 'tunnel closed' && l.path === '/live/chat', 'the tunnel\'s access line')
  t.match(line, { tenant: 'school-a', method: 'GET', upstream: 'ws-app' })
  t.notOk(JSON.stringify(line).includes('room='), 'no query in the log')
})

t.test("school-b's session cookie never reaches legacy on school-a's tunnel", async (t) => {
  const before = wsApp.upgrades.length
  const { ws } = await open('/live/chat', { cookie: `${sessions.cookie('school-b')}; theme=dark` })
  const upgrade = wsApp.upgrades[before]
  t.equal(upgrade?.headers.cookie, 'theme=dark', 'the other school\'s session cookie was removed, the rest kept')
  ws.close()
  const unsigned = await open('/live/chat', { cookie: 'session=not-a-session-of-anyone' })
  t.equal(wsApp.upgrades[before + 1]?.headers.cookie, undefined, 'nor does a cookie naming no session of this school')
  unsigned.ws.close()
})

t.test('the same refusals as any request, nothing sent to legacy', async (t) => {
  const before = wsApp.upgrades.length + zope.requests.length
  t.match(await refusal('/live/chat', { host: 'school-x.localhost' }), { status: 404, body: /FICUS_ERR_TENANT_UNKNOWN/ })
  t.match(await refusal('/live/chat', { host: 'school-m.localhost' }), { status: 503 })
  t.match(await refusal('/live/a%2fb'), { status: 400, body: /FICUS_ERR_PATH_INVALID/ })
  t.match(await refusal('/reports/live'), { status: 501, body: /FICUS_ERR_UPGRADE_UNSUPPORTED/ }, 'an upstream not declared to speak WebSocket gets no tunnel')
  t.equal(wsApp.upgrades.length + zope.requests.length, before)
  // A bare offer of cleartext HTTP/2 is still ignored: a plain request, served over HTTP/1.1.
  const h2c = await rawRequest(t, proxy.port, 'GET /live/plain HTTP/1.1\r\nHost: school-a.localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n')
  t.equal(h2c.statusCode, 200)
  t.equal(h2c.body.toString('utf8'), 'ws-app GET /live/plain')
})

t.test('a WebSocket app that is down: 502 on its paths, the others untouched', async (t) => {
  const down = JSON.stringify({
    upstreams: { zope: { url: zope.url }, 'ws-app': { url: wsApp.url, upgrades: ['websocket'] }, gone: { url: `http://127.0.0.1:${await closedPort()}`, upgrades: ['websocket'] } },
    routes: { '/live': 'ws-app', '/gone': 'gone' },
    default: 'zope'
  })
  const withDown = await startProxy(t, { env: { LEGACY_UPSTREAMS: down }, routes: [] })
  t.match(await refusal('/gone/chat', { port: withDown.port }), { status: 502, body: /FICUS_ERR_LEGACY_UNAVAILABLE/ })
  const { ws } = await open('/live/chat', { port: withDown.port })
  ws.close()
})

t.test('a migrated route takes upgrades itself for the schools its flag is on for', async (t) => {
  const onNew = await open('/live/new')
  await waitFor(() => onNew.messages.length === 1, 5_000, 'the new side\'s greeting')
  t.equal(onNew.messages[0]?.data.toString('utf8'), 'from the new side')
  onNew.ws.close()
  const before = wsApp.upgrades.length
  const onLegacy = await open('/live/new', { host: 'school-b.localhost' })
  t.equal(wsApp.upgrades.length, before + 1, 'school-b, flag off, is tunnelled to legacy')
  onLegacy.ws.close()
})

t.test('the tunnel cap: over it, 503 with a code; a slot freed is a slot again', async (t) => {
  await waitFor(() => wsApp.sockets.every((s) => s.readyState === WebSocket.CLOSED), 5_000, 'earlier tunnels closed')
  const opened = [await open('/live/a'), await open('/live/b'), await open('/live/c')]
  const refused = await refusal('/live/d')
  t.equal(refused.status, 503)
  t.match(refused.body, /FICUS_ERR_TUNNEL_LIMIT/)
  opened[0]?.ws.close()
  await once(opened[0]?.ws as WebSocket, 'close')
  await waitFor(() => wsApp.closeCodes.length >= 1, 5_000, 'the server side to close')
  // ficus frees the slot when its side of the socket closes, a moment after the client's.
  let again: Opened | undefined
  for (let attempt = 0; again === undefined; attempt++) {
    try {
      again = await open('/live/e')
    } catch (error) {
      if (attempt >= 40) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  t.ok(again, 'a new tunnel opens once a slot is free')
  for (const o of [...opened, again]) o?.ws.terminate()
})

t.test('an idle tunnel is closed', async (t) => {
  const idle = await startProxy(t, { env: { LEGACY_UPSTREAMS: table, TUNNEL_IDLE_TIMEOUT_MS: '300' }, routes: [] })
  const { ws } = await open('/live/idle', { port: idle.port })
  const started = performance.now()
  ws.send('still here')
  const [code] = await once(ws, 'close') as [number]
  t.ok(performance.now() - started >= 250, 'not before the idle limit')
  t.equal(code, 1006, 'cut, with no close handshake: the peers were silent')
})

t.test('a busy tunnel is closed at its total lifetime', async (t) => {
  const short = await startProxy(t, { env: { LEGACY_UPSTREAMS: table, TUNNEL_MAX_LIFETIME_MS: '600' }, routes: [] })
  const { ws, messages } = await open('/live/busy', { port: short.port })
  const started = performance.now()
  const chatter = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send('tick') }, 50)
  t.teardown(() => clearInterval(chatter))
  await once(ws, 'close')
  clearInterval(chatter)
  t.ok(performance.now() - started >= 550, `closed after ${Math.round(performance.now() - started)} ms, not before the lifetime`)
  t.ok(messages.length > 3, 'it was busy all along')
})

const DRAIN_MS = 1_500

/** ficus as it runs in production, in its own process, in front of the same upstreams. */
async function ficusProcess (t: Test): Promise<{ ficus: FicusProcess, port: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-tunnel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeJson(join(dir, 'tenants.json'), DEFAULT_TENANTS)
  writeJson(join(dir, 'flags.json'), flagsOnFor([]))
  const ficus = spawnFicus(t, {
    HOST: '127.0.0.1', PORT: '0', ADMIN_PORT: '0', LEGACY_UPSTREAMS: table, TENANTS_FILE: join(dir, 'tenants.json'), FLAGS_FILE: join(dir, 'flags.json'), LOG_LEVEL: 'info', DRAIN_DELAY_MS: String(DRAIN_MS)
  })
  const serving = await ficus.waitForLog((line) => line.msg === 'ficus is serving', 'ficus is serving')
  return { ficus, port: Number(new URL(String(serving.public)).port) }
}

t.test('SIGTERM: tunnels stay open through the drain, then are closed with 1001 both ways; ficus exits 0', async (t) => {
  const { ficus, port } = await ficusProcess(t)
  const { ws, messages } = await open('/live/shutdown', { port })
  const closed = once(ws, 'close') as Promise<[number]>
  const closeCodesBefore = wsApp.closeCodes.length
  const signalled = performance.now()
  ficus.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, DRAIN_MS / 3))
  ws.send('during the drain')
  await waitFor(() => messages.length === 1, 5_000, 'an echo during the drain')
  t.equal(messages[0]?.data.toString('utf8'), 'during the drain', 'the tunnel still carries messages while draining')
  const [code] = await closed
  t.ok(performance.now() - signalled >= DRAIN_MS - 50, `closed after the drain (${Math.round(performance.now() - signalled)} ms)`)
  t.equal(code, 1001, 'the client got a close frame: going away')
  await waitFor(() => wsApp.closeCodes.length > closeCodesBefore, 5_000, 'legacy\'s side to close too')
  t.equal(wsApp.closeCodes.at(-1), 1001, 'legacy got a close frame too, masked as a client\'s must be')
  const exit = await ficus.exited
  t.same(exit, { code: 0, signal: null }, 'a clean exit, nothing cut')
  t.ok(ficus.logs.some((line) => line.msg === 'upgrade tunnels closed' && line.tunnels === 1))
})

t.test('SIGTERM with a 1 MiB frame on its way to the client: the frame arrives whole, then the close', async (t) => {
  const { ficus, port } = await ficusProcess(t)
  const { ws, messages } = await open('/live/in-flight', { port })
  let closeCode: number | undefined
  ws.once('close', (code: number) => { closeCode = code })
  const closeCodesBefore = wsApp.closeCodes.length
  // Legacy's echo stops halfway through its frame until released: ficus is inside that frame
  // when the drain ends.
  const release = wsApp.holdWrites(512 * 1024)
  const frame = randomBytes(1024 * 1024)
  ws.send(frame)
  ficus.child.kill('SIGTERM')
  // The line ficus logs as the drain ends and it closes the tunnels; then a moment for the close.
  await ficus.waitForLog((line) => line.msg === 'no longer accepting: finishing the requests in flight', 'the end of the drain')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(messages.length, 0, 'the echo was still on its way when the drain ended')
  t.equal(closeCode, undefined, 'and no close came inside it')
  release()
  await waitFor(() => closeCode !== undefined, 5_000, 'the close')
  t.equal(messages.length, 1, 'one message before the close')
  t.ok(messages[0]?.data.equals(frame), 'the 1 MiB frame arrived whole')
  t.equal(closeCode, 1001)
  await waitFor(() => wsApp.closeCodes.length > closeCodesBefore, 5_000, 'legacy\'s side to close')
  t.equal(wsApp.closeCodes.at(-1), 1001)
  t.same(await ficus.exited, { code: 0, signal: null })
})

t.test('SIGTERM with a 1 MiB frame on its way to legacy: legacy gets it whole, then the close', async (t) => {
  const { ficus, port } = await ficusProcess(t)
  let gate: WriteGate | undefined
  // The client's socket goes through a gate, so that its frame can stop halfway.
  const ws = new WebSocket(`ws://127.0.0.1:${port}/live/upload`, {
    headers: { host: 'school-a.localhost' },
    createConnection: (options) => {
      const socket = connect(Number(options.port), String(options.host))
      gate = new WriteGate(socket)
      return socket
    }
  })
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  let closeCode: number | undefined
  ws.once('close', (code: number) => { closeCode = code })
  const closeCodesBefore = wsApp.closeCodes.length
  const lengthsBefore = wsApp.messageLengths.length
  const release = (gate as WriteGate).hold(512 * 1024)
  ws.send(randomBytes(1024 * 1024))
  ficus.child.kill('SIGTERM')
  await ficus.waitForLog((line) => line.msg === 'no longer accepting: finishing the requests in flight', 'the end of the drain')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(wsApp.closeCodes.length, closeCodesBefore, 'legacy has seen no close while its frame is unfinished')
  release()
  await waitFor(() => wsApp.closeCodes.length > closeCodesBefore && closeCode !== undefined, 5_000, 'both sides to close')
  t.same(wsApp.messageLengths.slice(lengthsBefore), [1024 * 1024], 'the 1 MiB frame reached legacy whole')
  t.equal(wsApp.closeCodes.at(-1), 1001)
  t.equal(closeCode, 1001, 'the client got its close frame as well')
  t.same(await ficus.exited, { code: 0, signal: null })
})

/** A proxy whose every path goes to `url`, a legacy app declared to speak WebSocket. */
async function proxyTo (t: Test, url: string): Promise<number> {
  const only = JSON.stringify({ upstreams: { app: { url, upgrades: ['websocket'] } }, routes: {}, default: 'app' })
  return (await startProxy(t, { env: { LEGACY_UPSTREAMS: only }, routes: [] })).port
}

t.test("legacy's 101 under the rules of any legacy answer: session cookie host-only, hop-by-hop dropped, X-Served-By; the switch kept", async (t) => {
  const app = await startWsEchoApp(t, {
    upgradeHeaders: ['Set-Cookie: session=abc; Domain=.localhost; Path=/', 'Set-Cookie: prefs=1; Domain=.localhost', 'Keep-Alive: timeout=5', 'Connection: X-Hop', 'X-Hop: 1', 'X-Served-By: zope', 'X-Kept: yes']
  })
  const port = await proxyTo(t, app.url)
  const ws = new WebSocket(`ws://127.0.0.1:${port}/live/cookies`, { headers: { host: 'school-a.localhost' } })
  t.teardown(() => ws.terminate())
  // ws emits open in the same tick as upgrade.
  const opened = once(ws, 'open')
  const [response] = await once(ws, 'upgrade') as [IncomingMessage]
  await opened
  const headers = response.headers
  t.same(headers['set-cookie'], ['session=abc; Path=/', 'prefs=1; Domain=.localhost'], 'the session cookie is host-only, other cookies untouched')
  t.equal(headers['x-served-by'], 'legacy')
  t.equal(headers['keep-alive'], undefined, 'hop-by-hop headers stop at ficus')
  t.equal(headers['x-hop'], undefined, 'and so do the ones legacy lists in Connection')
  t.equal(headers['x-kept'], 'yes')
  t.match(headers, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-accept': /^[A-Za-z0-9+/]{27}=$/ }, 'what the switch needs stays')
  ws.send('still a WebSocket')
  const [echo] = await once(ws, 'message') as [Buffer]
  t.equal(echo.toString('utf8'), 'still a WebSocket')
})

/** A legacy app that answers every upgrade request with `answer`, byte for byte. */
async function rawLegacy (t: Test, answer: string): Promise<string> {
  const server = createNetServer((socket) => {
    socket.on('error', () => undefined)
    socket.once('data', () => socket.end(answer, 'latin1'))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('a malformed answer to an upgrade is a 502; the client never sees it', async (t) => {
  const folded = await rawLegacy(t, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-A: 1\r\n folded: in\r\n\r\n')
  t.match(await refusal('/live/x', { port: await proxyTo(t, folded) }), { status: 502, body: /FICUS_ERR_LEGACY_BAD_RESPONSE/ })
  const interim = await rawLegacy(t, 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
  t.match(await refusal('/live/x', { port: await proxyTo(t, interim) }), { status: 502, body: /FICUS_ERR_LEGACY_BAD_RESPONSE/ })
  const silent = await rawLegacy(t, '')
  t.match(await refusal('/live/x', { port: await proxyTo(t, silent) }), { status: 502, body: /FICUS_ERR_LEGACY_UNAVAILABLE/ }, 'closed without an answer')
})

t.test("legacy's refusal of an upgrade comes back under the same rules, its body intact", async (t) => {
  const body = 'no tunnel for you'
  const refusing = await rawLegacy(t, `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nSet-Cookie: session=abc; Domain=.localhost\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`)
  const port = await proxyTo(t, refusing)
  const ws = new WebSocket(`ws://127.0.0.1:${port}/live/x`, { headers: { host: 'school-a.localhost' } })
  ws.on('error', () => undefined)
  const [, response] = await once(ws, 'unexpected-response') as [unknown, IncomingMessage]
  let received = ''
  for await (const chunk of response.setEncoding('utf8')) received += chunk as string
  t.equal(response.statusCode, 403)
  t.same(response.headers['set-cookie'], ['session=abc'])
  t.equal(response.headers['keep-alive'], undefined)
  t.equal(response.headers['x-served-by'], 'legacy')
  t.equal(received, body, 'the chunked body read as legacy framed it')
})

t.test('header bytes past ASCII reach legacy as the client sent them', async (t) => {
  const before = wsApp.upgrades.length
  // Node sends and reads header strings as latin1: one byte per character.
  const { ws } = await open('/live/bytes', { cookie: 'theme=caf\u00e9' })
  t.equal(wsApp.upgrades[before]?.headers.cookie, 'theme=caf\u00e9', 'the byte 0xE9, not its UTF-8 spelling')
  ws.close()
})

t.test('a tunnel waiting for legacy to answer holds its slot', async (t) => {
  let asked = 0
  const sockets = new Set<Socket>()
  const silent = createNetServer((socket) => {
    asked++
    sockets.add(socket)
    socket.on('error', () => undefined)
  })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  // A net.Server keeps its connections open through close(): they are ended here.
  t.teardown(() => { for (const socket of sockets) socket.destroy(); silent.close() })
  const only = JSON.stringify({ upstreams: { app: { url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, upgrades: ['websocket'] } }, routes: {}, default: 'app' })
  const capped = await startProxy(t, { env: { LEGACY_UPSTREAMS: only, TUNNEL_MAX: '1' }, routes: [] })
  const waiting = new WebSocket(`ws://127.0.0.1:${capped.port}/live/slow`, { headers: { host: 'school-a.localhost' } })
  waiting.on('error', () => undefined)
  t.teardown(() => waiting.terminate())
  await waitFor(() => asked === 1, 5_000, 'legacy to be asked')
  t.match(await refusal('/live/next', { port: capped.port }), { status: 503, body: /FICUS_ERR_TUNNEL_LIMIT/ })
  t.equal(asked, 1, 'the refused one never reached legacy')
})
