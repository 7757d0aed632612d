import type { ServerResponse } from 'node:http'
import type { FileHandle } from 'node:fs/promises'
import { LRUCache } from 'lru-cache'
import { drained } from '../lib/representation.js'
import type { OriginMetrics } from '../lib/metrics.js'
import type { ChunkRow } from './chunk-index.js'
import { BLOCK_SIZE, type ChunkStore } from './chunk-store.js'

/**
 * The shard's read path. A chunk is read in segments of `segmentSize` bytes
 * (1 MiB by default: large reads are what make the disk path fast). Every
 * segment read from disk is CRC-verified block by block before a byte of it is
 * sent; verified segments are kept in a RAM cache keyed by the chunk's digest
 * and the segment number, so a replaced or deleted chunk can never be served
 * from a stale entry (its index row, looked up first, names the digest).
 *
 * Concurrent misses on one segment share one disk read (`inflight`). Hits are
 * sent as `subarray`s of cached Buffers, which are never mutated.
 */
export class ChunkReader {
  private readonly cache: LRUCache<string, Buffer> | null
  private readonly inflight = new Map<string, Promise<Buffer>>()

  constructor(
    private readonly store: ChunkStore,
    private readonly metrics: OriginMetrics,
    private readonly segmentSize: number,
    cacheBytes: number,
    private readonly onCorrupt: (row: ChunkRow, err: Error) => void,
  ) {
    this.cache = cacheBytes >= segmentSize
      ? new LRUCache<string, Buffer>({ maxSize: cacheBytes, sizeCalculation: b => b.length })
      : null
  }

  get cachedBytes(): number {
    return this.cache?.calculatedSize ?? 0
  }

  /** Writes bytes [start, end] (inclusive) of the chunk to `res`, verified, with backpressure. */
  async writeRange(row: ChunkRow, start: number, end: number, res: ServerResponse): Promise<void> {
    const S = this.segmentSize
    let fh: FileHandle | undefined
    let fromDisk = false
    try {
      for (let seg = Math.floor(start / S); seg <= Math.floor(end / S); seg++) {
        const segStart = seg * S
        let base = segStart
        let buf = this.cache?.get(`${row.sha256}:${seg}`)
        if (buf === undefined) {
          fromDisk = true
          fh ??= await this.store.openChunk(row)
          const segEnd = Math.min(segStart + S, row.size)
          if (this.cache) buf = await this.readSegment(fh, row, seg, segStart, segEnd)
          else {
            // no cache: read just the blocks the range touches
            base = Math.max(segStart, Math.floor(start / BLOCK_SIZE) * BLOCK_SIZE)
            const to = Math.min(segEnd, Math.ceil((end + 1) / BLOCK_SIZE) * BLOCK_SIZE)
            buf = await this.store.readVerified(fh, row, base, to)
          }
        }
        const s = Math.max(start, base) - base
        const e = Math.min(end + 1, base + buf.length) - base
        if (!res.write(buf.subarray(s, e))) await drained(res)
      }
      this.metrics.chunkReads.inc({ result: fromDisk ? 'disk' : 'memory' })
      this.metrics.bytesServed.inc(end - start + 1)
    } catch (err) {
      if ((err as { code?: string }).code === 'CDN_ERR_CORRUPT') {
        this.metrics.chunkReads.inc({ result: 'corrupt' })
        this.onCorrupt(row, err as Error)
      }
      throw err
    } finally {
      await fh?.close().catch(() => {})
    }
  }

  private readSegment(fh: FileHandle, row: ChunkRow, seg: number, from: number, to: number): Promise<Buffer> {
    const key = `${row.sha256}:${seg}`
    let p = this.inflight.get(key)
    if (!p) {
      p = this.store.readVerified(fh, row, from, to)
        .then(buf => { this.cache!.set(key, buf); return buf })
        .finally(() => this.inflight.delete(key))
      this.inflight.set(key, p)
    }
    return p
  }

  /** Drops every cached segment of a chunk (after it is found corrupt or deleted). */
  forget(row: ChunkRow): void {
    if (!this.cache) return
    for (let seg = 0; seg * this.segmentSize < row.size; seg++) this.cache.delete(`${row.sha256}:${seg}`)
  }
}
