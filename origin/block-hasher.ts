import { createHash, type Hash } from 'node:crypto'
import { crc32c } from '@node-rs/crc32'

/** Checksum granularity: a CRC32C per 64 KiB block, as GFS keeps. */
export const BLOCK_SIZE = 64 * 1024

/**
 * Hashes a chunk as it streams past, in pieces of any size: the whole-chunk
 * SHA-256 (the end-to-end digest) and one CRC32C per block (what range reads
 * verify). Used by uploads, recovery and the scrubber alike.
 */
export class BlockHasher {
  private readonly sha: Hash = createHash('sha256')
  private readonly crcs: number[] = []
  private crc = 0
  size = 0

  update(piece: Buffer): void {
    this.sha.update(piece)
    let off = 0
    while (off < piece.length) {
      const inBlock = this.size % BLOCK_SIZE
      const take = Math.min(BLOCK_SIZE - inBlock, piece.length - off)
      this.crc = crc32c(piece.subarray(off, off + take), inBlock === 0 ? 0 : this.crc)
      this.size += take
      off += take
      if (this.size % BLOCK_SIZE === 0) this.crcs.push(this.crc)
    }
  }

  /** The SHA-256 in hex and the CRCs packed big-endian, 4 bytes a block. */
  finish(): { sha256: string; crcs: Buffer; size: number } {
    if (this.size % BLOCK_SIZE !== 0) this.crcs.push(this.crc)
    const crcs = Buffer.alloc(4 * this.crcs.length)
    this.crcs.forEach((c, i) => crcs.writeUInt32BE(c, 4 * i))
    return { sha256: this.sha.digest('hex'), crcs, size: this.size }
  }
}
