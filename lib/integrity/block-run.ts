import { crc32c } from './crc32c.js'
import { BLOCK_SIZE } from './block-hasher.js'

/**
 * The blocks of one read of a chunk from a shard or a peer checked against
 * the chunk's block list as they arrive, so that a source that sends a bad
 * block is left at that block's first byte and the next one asked for the
 * rest: what goes on is whole verified blocks only, and bytes from two
 * sources never meet inside a block. Used by the router's relay
 * (router/read/reader.ts) and by an edge's direct and peer fills
 * (edge/fill/direct-source.ts, edge/site/peer-source.ts), which tell the fill
 * how far they verified (`ChunkBody.verified` in edge/fill/fill.ts), so the
 * fill's gate does not take the same CRC32C again.
 *
 * Nothing is copied: the CRC32C runs over each piece as it comes (it is
 * incremental), and a block split across pieces is held as views of those
 * pieces until its last byte is in. What goes on is views too: per piece, the
 * bytes of the blocks it completes, after the held views of the first one,
 * views adjacent in the same memory joined into one (the relay's pieces land
 * one after another in a slab: one write per piece, however many pieces a
 * block came in). The caller keeps the pieces' memory as it was until it is
 * done with the views (an edge's pieces are fresh buffers; the relay's slab
 * is reused only once what was sent from it is written out).
 *
 * A block past the end of the list (a list for a shorter chunk), and bytes
 * past the chunk's end, fail like a block whose CRC32C differs.
 */
export class BlockRun {
  /** the chunk offset of the next byte to verify: where a failover resumes */
  at: number
  /** the index of a block that failed its CRC32C, or -1 */
  bad = -1
  /** the start of the block being read, held from earlier pieces; `carried` bytes of it */
  private held: Buffer[] = []
  private carried = 0
  private crc = 0

  constructor(private readonly crcs: Buffer, private readonly size: number, from: number) {
    this.at = from
  }

  /** Views of the verified blocks `piece` completes, in order; stops at a bad one (see `bad`). */
  push(piece: Buffer): Buffer[] {
    const out: Buffer[] = []
    let off = 0
    // where the verified bytes of this piece end
    let done = 0
    while (off < piece.length && this.bad < 0) {
      const len = Math.min(this.at + BLOCK_SIZE, this.size) - this.at
      if (len <= 0) {
        // bytes past the chunk's end: they fail as the first block past it
        this.bad = Math.ceil(this.at / BLOCK_SIZE)
        break
      }
      const n = Math.min(len - this.carried, piece.length - off)
      this.crc = crc32c(piece.subarray(off, off + n), this.carried === 0 ? 0 : this.crc)
      this.carried += n
      off += n
      if (this.carried < len) break
      const i = this.at / BLOCK_SIZE
      if (4 * i + 4 > this.crcs.length || this.crc !== this.crcs.readUInt32BE(4 * i)) {
        this.bad = i
        break
      }
      // the block's start held from earlier pieces goes first
      for (const h of this.held) append(out, h)
      this.held = []
      this.carried = 0
      this.at += len
      done = off
    }
    if (done > 0) append(out, piece.subarray(0, done))
    if (this.bad < 0 && off > done) append(this.held, piece.subarray(done, off))
    return out
  }

  /** The bytes of a block the read ended inside (its `to` is not a block's end): unverified, the fill's gate checks them once whole. */
  rest(): Buffer | undefined {
    if (this.carried === 0) return undefined
    const b = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held)
    this.at += this.carried
    this.held = []
    this.carried = 0
    return b
  }
}

/** Pushes `v`, or extends the last view when `v` follows it in the same memory (one view of both). */
function append(views: Buffer[], v: Buffer): void {
  const last = views[views.length - 1]
  if (last !== undefined && last.buffer === v.buffer && last.byteOffset + last.length === v.byteOffset)
    views[views.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + v.length)
  else views.push(v)
}
