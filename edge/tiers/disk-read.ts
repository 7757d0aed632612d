import { join } from 'node:path'
import { BLOCK_SIZE, firstBadBlock } from '../../lib/integrity/block-hasher.js'
import { CorruptChunkError } from '../../lib/errors.js'
import { BufferPool } from './buffer-pool.js'
import type { ReadHandle } from './disk-handles.js'
import type { DiskRow } from './disk-index.js'
import type { Send, SendPiece } from '../serve/send.js'
import { refName } from '../title.js'

/**
 * Reading a chunk file of the disk tier, verified: the one read path of the
 * main thread's disk tier (edge/tiers/disk-tier.ts) and of every serve thread
 * (edge/serve/thread-disk.ts), so a thread reads in the same pieces and
 * refuses exactly what the main thread refuses.
 *
 * Every block a read touches is checked against its CRC32C from the disk
 * index before any byte of the piece is handed on; a short file fails the
 * same way. What happens to a corrupt chunk is the owner's: the main thread
 * drops it (row, then file); a thread tells the main thread, which drops it,
 * since only the main thread writes and evicts. Either way the read throws a
 * CorruptChunkError, and a caller that has sent nothing yet can still answer
 * from elsewhere.
 */
/** who found a chunk corrupt: a player's read on the main thread, a promotion to RAM, a serve thread's read */
export type Found = 'read' | 'promotion' | 'thread'

/** idle read buffers kept for reuse (each readSize + 64 KiB): enough for every response of a busy edge to have two pieces out */
export const POOL_KEEP = 64

/** A chunk's file under the tier's chunks/ directory (its title's directory; a rendition's name starts with its id). */
export function chunkPath(chunksDir: string, r: Pick<DiskRow, 'contentId' | 'rid' | 'index' | 'sha256'>): string {
  return join(chunksDir, r.contentId, r.rid === undefined ? `${r.index}-${r.sha256}.chunk` : `${r.rid}.${r.index}-${r.sha256}.chunk`)
}

export class ChunkFileReader {
  /** read buffers of readSize + one block (a readSize range at any offset is one read) */
  readonly pool: BufferPool

  constructor(readSize: number, keep: number, private readonly corrupt: (row: DiskRow, block: number, by: Found) => Promise<void> | void) {
    this.pool = new BufferPool(readSize + BLOCK_SIZE, keep)
  }

  /**
   * Sends bytes [start, end] (inclusive) of a chunk, reading only the blocks
   * the range touches, in pieces of up to readSize + one block (so a range of
   * readSize bytes at any offset is one read), each verified before any of it
   * is sent. While one piece goes out the next is read: the disk and the
   * socket work at once. Buffers come from the pool and go back to it from
   * the write's callback, once the socket is done with them. With `ends`, the
   * range is the rest of the response: its last piece ends it.
   */
  async writeRange(row: DiskRow, h: ReadHandle, start: number, end: number, res: Parameters<SendPiece>[0], send: SendPiece, ends?: Send['end']): Promise<void> {
    const step = this.pool.size
    const last = Math.min(row.size, Math.ceil((end + 1) / BLOCK_SIZE) * BLOCK_SIZE)
    let pos = start - (start % BLOCK_SIZE)
    let next: Promise<Buffer> | undefined = this.readPiece(row, h, pos, Math.min(pos + step, last))
    try {
      while (next !== undefined) {
        const from = pos
        const to = Math.min(pos + step, last)
        const buf = await next
        next = undefined
        pos = to
        if (pos <= end) {
          next = this.readPiece(row, h, pos, Math.min(pos + step, last))
          // it fails, if it does, while this piece drains: handled here, seen again by the `await next` above
          next.catch(() => {})
        }
        const piece = buf.subarray(Math.max(start, from) - from, Math.min(end + 1, to) - from)
        if (next === undefined && ends !== undefined) ends(res, piece, () => this.pool.give(buf))
        else await send(res, piece, err => { if (!err) this.pool.give(buf) })
      }
    } finally {
      // cut mid-range (the player left, or a corrupt piece): wait for the read in flight, so the handle is not released under it
      if (next !== undefined) await next.then(b => this.pool.give(b), () => {})
    }
  }

  /** Bytes [from, to) of the chunk (from block-aligned) into a pooled buffer, verified. */
  private async readPiece(row: DiskRow, h: ReadHandle, from: number, to: number): Promise<Buffer> {
    const buf = this.pool.take()
    try {
      await this.readVerified(row, h, from, buf.subarray(0, to - from), 'read')
      return buf
    } catch (err) {
      this.pool.give(buf)
      throw err
    }
  }

  /** Fills `buf` with the chunk's bytes from block-aligned `from` and checks every block; a bad one is the owner's to handle, then throws. */
  async readVerified(row: DiskRow, h: ReadHandle, from: number, buf: Buffer, by: Found): Promise<void> {
    let got = 0
    while (got < buf.length) {
      const { bytesRead } = await h.fh.read(buf, got, buf.length - got, from + got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    const bad = got < buf.length ? Math.floor((from + got) / BLOCK_SIZE) : firstBadBlock(h.crcs, buf, from)
    if (bad >= 0) {
      await this.corrupt(row, bad, by)
      throw new CorruptChunkError(refName(row), `disk tier block ${bad} fails its CRC32C`)
    }
  }
}
