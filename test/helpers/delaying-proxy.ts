// A TCP proxy that makes a server slow: every chunk, each way, is held for `delayMs` before it
// is passed on (in order), as on a long or congested network. Put in front of one school's
// PostgreSQL, it turns each round trip into 2 x delayMs. Bytes already sent when one side closes
// still reach the other side, then that side is closed too, as on a real network.
import { once } from 'node:events'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import type { TeardownHost } from './recording-legacy.ts'

export interface DelayingProxy {
  readonly port: number
  /** One-way delay of every chunk, in ms; changing it affects chunks received from then on. */
  delayMs: number
  close (): Promise<void>
}

export async function startDelayingProxy (t: TeardownHost, target: { host: string, port: number }, delayMs = 0): Promise<DelayingProxy> {
  const sockets = new Set<Socket>()
  const proxy = {
    delayMs,
    get port (): number { return (server.address() as AddressInfo).port },
    async close (): Promise<void> {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
    }
    relay(client, upstream, () => proxy.delayMs)
    relay(upstream, client, () => proxy.delayMs)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => proxy.close())
  return proxy
}

/** Passes `from`'s bytes to `to`, each chunk `delay()` ms late and in order; ends `to` after the last. */
function relay (from: Socket, to: Socket, delay: () => number): void {
  let last = 0
  const later = (action: () => void): void => {
    const at = Math.max(Date.now() + delay(), last)
    last = at
    setTimeout(action, Math.max(0, at - Date.now()))
  }
  from.on('data', (chunk: Buffer) => later(() => { if (!to.destroyed) to.write(chunk) }))
  const finish = (): void => later(() => to.end())
  from.once('end', finish)
  from.once('close', finish)
}
