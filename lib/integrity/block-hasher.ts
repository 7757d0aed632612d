import { createHash, type Hash } from 'node:crypto'
import { crc32c } from './crc32c.js'

/** Checksum granularity: a CRC32C per 64 KiB block, as GFS keeps. Shared by the origin and the edge's disk tier. */
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

/** What a manifest's `blocks` entry holds for a chunk: the SHA-256, in hex, of its packed block CRCs. */
export function blockListDigest(crcs: Buffer): string {
  return createHash('sha256').update(crcs).digest('hex')
}

/** The length of a chunk of `size` bytes' block list: a CRC32C of 4 bytes per block. */
export function blockListBytes(size: number): number {
  return 4 * Math.ceil(size / BLOCK_SIZE)
}

/** `crcs` is the block list the manifest anchors (`digest`, its `blocks` entry) for a chunk of `size` bytes: the right length and digest. */
export function blockListMatches(crcs: Buffer, size: number, digest: string | undefined): boolean {
  return crcs.length === blockListBytes(size) && blockListDigest(crcs) === digest
}

/** The per-block CRC32Cs of a whole chunk already in memory, packed as `finish()` packs them. */
export function blockCrcs(buf: Buffer): Buffer {
  const n = Math.ceil(buf.length / BLOCK_SIZE)
  const out = Buffer.allocUnsafe(4 * n)
  for (let i = 0; i < n; i++) out.writeUInt32BE(crc32c(buf.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)), 4 * i)
  return out
}

/**
 * Checks each block of `buf`, which holds the chunk's bytes from block-aligned
 * offset `from` (the last block may be short only at the chunk's end).
 * Returns the number of the first block that fails, or -1 when all pass.
 */
export function firstBadBlock(crcs: Buffer, buf: Buffer, from: number): number {
  for (let off = 0; off < buf.length; off += BLOCK_SIZE) {
    const block = (from + off) / BLOCK_SIZE
    if (4 * block + 4 > crcs.length) return block
    if (crc32c(buf.subarray(off, Math.min(off + BLOCK_SIZE, buf.length))) !== crcs.readUInt32BE(4 * block)) return block
  }
  return -1
}
