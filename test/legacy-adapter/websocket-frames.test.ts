// The frame tracker that lets a tunnel close a WebSocket between two frames: over frames built
// by the `ws` library itself (every length encoding, masked or not, control and data, fragments),
// cut into chunks anywhere, it finds exactly where each frame ends; and the close frame ficus
// sends reads, in `ws`'s own receiver, as 1001 from a server or from a client.
import t from 'tap'
import fc from 'fast-check'
import * as ws from 'ws'
import { closeFrame, FrameBoundaries } from '../../legacy-adapter/websocket-frames.ts'

interface FrameOptions { readonly fin: boolean, readonly opcode: number, readonly mask: boolean, readonly readOnly: boolean, readonly rsv1: boolean }
// ws exports its Sender and Receiver, which its type declarations leave out.
const { Sender, Receiver } = ws as unknown as {
  Sender: { frame (data: Buffer, options: FrameOptions): Buffer[] }
  Receiver: new (options: { isServer: boolean }) => NodeJS.WritableStream & { on (event: 'conclude', listener: (code: number) => void): void }
}

// Lengths around each encoding's edges: 7 bits (<= 125), 16 bits (126 to 65535), 64 bits.
const LENGTH = fc.oneof(fc.integer({ min: 0, max: 127 }), fc.integer({ min: 65_530, max: 65_540 }), fc.integer({ min: 0, max: 70_000 }))
const FRAME = fc.record({
  length: LENGTH,
  opcode: fc.constantFrom(0x0, 0x1, 0x2, 0x9, 0xa),
  fin: fc.boolean(),
  mask: fc.boolean()
})

t.test('frame ends found exactly, however the stream is cut', async (t) => {
  await fc.assert(fc.property(fc.array(FRAME, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 10 }), (frames, cuts) => {
    const ends: number[] = []
    const bytes: Buffer[] = []
    let total = 0
    for (const frame of frames) {
      // Control frames carry at most 125 bytes (RFC 6455 section 5.5).
      const length = frame.opcode >= 0x8 ? frame.length % 126 : frame.length
      const built = Buffer.concat(Sender.frame(Buffer.alloc(length, 7), { fin: frame.fin || frame.opcode >= 0x8, opcode: frame.opcode, mask: frame.mask, readOnly: false, rsv1: false }))
      bytes.push(built)
      total += built.length
      ends.push(total)
    }
    const stream = Buffer.concat(bytes)
    const found: number[] = []
    const tracker = new FrameBoundaries()
    let offset = 0
    let cut = 0
    while (offset < stream.length) {
      const chunk = stream.subarray(offset, offset + (cuts[cut++ % cuts.length] as number))
      let at = 0
      while (at < chunk.length) {
        at = tracker.advance(chunk, at)
        if (tracker.atBoundary) found.push(offset + at)
      }
      offset += chunk.length
    }
    t.same(found, ends)
    t.ok(tracker.atBoundary)
    t.notOk(tracker.closeSeen, 'no close frame among them')
  }), { numRuns: 200 })
})

t.test('a close frame is seen once it has wholly gone by', async (t) => {
  const tracker = new FrameBoundaries()
  const close = Buffer.concat(Sender.frame(Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), { fin: true, opcode: 0x8, mask: true, readOnly: false, rsv1: false }))
  t.equal(tracker.advance(close.subarray(0, close.length - 1), 0), close.length - 1)
  t.notOk(tracker.closeSeen, 'not while its last byte is missing')
  t.equal(tracker.advance(close, close.length - 1), close.length)
  t.ok(tracker.closeSeen)
  t.ok(tracker.atBoundary)
})

t.test("ficus's close frame reads as 1001 in ws's receiver, from a server (unmasked) and from a client (masked)", async (t) => {
  for (const [masked, isServer] of [[false, false], [true, true]] as const) {
    const receiver = new Receiver({ isServer })
    const code = new Promise<number>((resolve) => receiver.on('conclude', resolve))
    receiver.write(closeFrame(1001, masked))
    t.equal(await code, 1001, masked ? 'masked, as legacy expects from a client' : 'unmasked, as a browser expects from a server')
  }
  t.not(closeFrame(1001, true).subarray(2, 6).toString('hex'), closeFrame(1001, true).subarray(2, 6).toString('hex'), 'a fresh masking key each time')
})
