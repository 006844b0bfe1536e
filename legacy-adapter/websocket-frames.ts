// WebSocket framing, as much as a tunnel needs to close one cleanly: where each frame of one
// direction ends (the header of RFC 6455 section 5.2: FIN/opcode, mask bit, 7/16/64-bit length,
// masking key; payloads are skipped, never unmasked), and the close frame ficus sends itself.
import { randomBytes } from 'node:crypto'

export const OPCODE_CLOSE = 0x8

// 2 bytes, then 2 or 8 more for an extended length, then 4 for a masking key: 14 at most.
const MAX_HEADER = 14

/** Follows one direction's byte stream frame by frame. */
export class FrameBoundaries {
  readonly #header = Buffer.alloc(MAX_HEADER)
  #headerHave = 0
  #payloadLeft = 0
  #opcode = 0
  #closeSeen = false

  /** Between two frames: the next byte, if any, starts a frame. */
  get atBoundary (): boolean {
    return this.#headerHave === 0 && this.#payloadLeft === 0
  }

  /** A whole close frame has gone by. */
  get closeSeen (): boolean {
    return this.#closeSeen
  }

  /**
   * Reads `chunk` from `from` to the end of the current frame or of the chunk, whichever comes
   * first, and returns where it stopped: when `atBoundary` is then true, a frame ended there.
   */
  advance (chunk: Buffer, from: number): number {
    let at = from
    while (at < chunk.length) {
      if (this.#payloadLeft > 0) {
        const taken = Math.min(this.#payloadLeft, chunk.length - at)
        this.#payloadLeft -= taken
        at += taken
        if (this.#payloadLeft === 0) this.#frameEnded()
        return at
      }
      this.#header[this.#headerHave++] = chunk[at++] as number
      const needed = this.#headerLength()
      if (this.#headerHave < needed) continue
      this.#payloadLeft = this.#payloadLength()
      this.#opcode = (this.#header[0] as number) & 0x0f
      this.#headerHave = 0
      if (this.#payloadLeft === 0) {
        this.#frameEnded()
        return at
      }
    }
    return at
  }

  #frameEnded (): void {
    if (this.#opcode === OPCODE_CLOSE) this.#closeSeen = true
  }

  // How long the header being read is, as far as its bytes so far tell.
  #headerLength (): number {
    if (this.#headerHave < 2) return 2
    const second = this.#header[1] as number
    const length7 = second & 0x7f
    const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0
    return 2 + extended + ((second & 0x80) !== 0 ? 4 : 0)
  }

  #payloadLength (): number {
    const length7 = (this.#header[1] as number) & 0x7f
    if (length7 === 126) return this.#header.readUInt16BE(2)
    // A length past 2^53 loses precision, which only delays the boundary of a frame that big.
    if (length7 === 127) return Number(this.#header.readBigUInt64BE(2))
    return length7
  }
}

/** A close frame carrying `code`, as a server sends it (unmasked) or a client must (masked). */
export function closeFrame (code: number, masked: boolean): Buffer {
  if (!masked) return Buffer.from([0x80 | OPCODE_CLOSE, 2, code >> 8, code & 0xff])
  // RFC 6455 section 5.3: a fresh, unpredictable masking key for every frame a client sends.
  const key = randomBytes(4)
  return Buffer.from([0x80 | OPCODE_CLOSE, 0x80 | 2, ...key, (code >> 8) ^ (key[0] as number), (code & 0xff) ^ (key[1] as number)])
}
