import { crc32c } from '@node-rs/crc32'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'

/**
 * The blocks of one direct read (direct-source.ts) checked against the
 * chunk's block list as they arrive, so that a shard that sends a bad block
 * is left at that block's first byte and the next owner asked for the rest:
 * what goes on to the fill is whole verified blocks only, and bytes from
 * two shards never meet inside a block. The fill's own gate (blocks.ts)
 * checks them again; the cost is one CRC32C pass, a few GB/s.
 *
 * A piece that holds whole blocks is passed on as views of itself; a block
 * split across pieces is gathered into a buffer of its own (never reused:
 * the fill copies what it is given, but a view handed on must stay valid).
 */
export class BlockRun {
  /** the chunk offset of the next byte to verify: where a failover resumes */
  at: number
  /** the index of a block that failed its CRC32C, or -1 */
  bad = -1
  private carry: Buffer | undefined
  private carried = 0

  constructor(private readonly crcs: Buffer, private readonly size: number, from: number) {
    this.at = from
  }

  /** The verified blocks `piece` completes; stops at a bad one (see `bad`). */
  push(piece: Buffer): Buffer[] {
    const out: Buffer[] = []
    let off = 0
    while (off < piece.length && this.bad < 0) {
      const len = Math.min(this.at + BLOCK_SIZE, this.size) - this.at
      let block: Buffer
      if (this.carried === 0 && piece.length - off >= len) {
        block = piece.subarray(off, off + len)
        off += len
      } else {
        this.carry ??= Buffer.allocUnsafe(len)
        const n = Math.min(len - this.carried, piece.length - off)
        piece.copy(this.carry, this.carried, off, off + n)
        this.carried += n
        off += n
        if (this.carried < len) break
        block = this.carry
        this.carry = undefined
        this.carried = 0
      }
      const i = this.at / BLOCK_SIZE
      if (crc32c(block) !== this.crcs.readUInt32BE(4 * i)) {
        this.bad = i
        break
      }
      out.push(block)
      this.at += len
    }
    return out
  }

  /** The bytes of a block the read ended inside (its `to` is not a block's end): unverified, the fill's gate checks them once whole. */
  rest(): Buffer | undefined {
    if (this.carried === 0) return undefined
    const b = this.carry!.subarray(0, this.carried)
    this.at += this.carried
    this.carry = undefined
    this.carried = 0
    return b
  }
}
