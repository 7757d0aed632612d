import { crc32c } from '../../lib/integrity/crc32c.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'

/**
 * Cuts a shard's answer, which starts at block-aligned chunk offset `at`,
 * into whole blocks and checks each against the block list. `push` returns
 * the bytes of the blocks a piece completed, as views of the pieces (no copy:
 * a block spanning pieces is checked with a running CRC32C over its parts),
 * adjacent views of one piece merged; after the first block that fails,
 * `bad` holds its number and nothing more is returned.
 */
export class BlockCheck {
  bad = -1
  private parts: Buffer[] = []
  private partsLen = 0
  private crc = 0

  constructor(private readonly crcs: Buffer, private readonly chunkLen: number, public at: number) {}

  push(piece: Buffer): Buffer[] {
    const out: Buffer[] = []
    for (let off = 0; off < piece.length && this.bad < 0;) {
      const len = Math.min(BLOCK_SIZE, this.chunkLen - this.at)
      if (len <= 0) break
      const take = Math.min(len - this.partsLen, piece.length - off)
      const part = piece.subarray(off, off + take)
      this.crc = crc32c(part, this.partsLen === 0 ? 0 : this.crc)
      this.parts.push(part)
      this.partsLen += take
      off += take
      if (this.partsLen < len) break
      const n = this.at / BLOCK_SIZE
      if (4 * n + 4 > this.crcs.length || this.crc !== this.crcs.readUInt32BE(4 * n)) {
        this.bad = n
        break
      }
      for (const p of this.parts) append(out, p)
      this.at += len
      this.parts = []
      this.partsLen = 0
    }
    return out
  }
}

/** Pushes `p`, or extends the last view when `p` continues it in the same memory. */
function append(out: Buffer[], p: Buffer): void {
  const last = out[out.length - 1]
  if (last && last.buffer === p.buffer && last.byteOffset + last.length === p.byteOffset)
    out[out.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + p.length)
  else out.push(p)
}
