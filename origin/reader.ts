import type { ServerResponse } from 'node:http'
import type { FileHandle } from 'node:fs/promises'
import { LRUCache } from 'lru-cache'
import { drained } from '../lib/representation.js'
import type { OriginMetrics } from '../lib/metrics.js'
import type { ChunkRow } from './chunk-index.js'
import { BLOCK_SIZE, type ChunkStore } from './chunk-store.js'
import { BufferPool } from './buffer-pool.js'
import { OpenFiles, type OpenFile } from './open-files.js'

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
 *
 * Chunk files stay open between reads (OpenFiles); `forget` retires a
 * chunk's file along with its cached segments.
 *
 * Without a cache, a range is read in pieces of up to `segmentSize` plus one
 * block, aligned to blocks (so a 1 MiB range at any offset is one read), into
 * pooled buffers that go back to the pool when the socket write that sends them
 * completes (see BufferPool).
 */
export class ChunkReader {
  private readonly cache: LRUCache<string, Buffer> | null
  private readonly inflight = new Map<string, Promise<Buffer>>()
  private readonly pool: BufferPool
  private readonly files: OpenFiles

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
    // idle buffers kept: about one per connection streaming from disk at once
    this.pool = new BufferPool(segmentSize + BLOCK_SIZE, 32)
    // enough to keep every chunk of a busy shard's hot set open; far below any fd limit
    this.files = new OpenFiles(row => store.openChunk(row), row => store.path(row.contentId, row.index, row.sha256), 256)
  }

  get cachedBytes(): number {
    return this.cache?.calculatedSize ?? 0
  }

  /** Writes bytes [start, end] (inclusive) of the chunk to `res`, verified, with backpressure. */
  async writeRange(row: ChunkRow, start: number, end: number, res: ServerResponse): Promise<void> {
    try {
      const fromDisk = this.cache ? await this.writeCached(row, start, end, res) : await this.writeFromDisk(row, start, end, res)
      this.metrics.chunkReads.inc({ result: fromDisk ? 'disk' : 'memory' })
      this.metrics.bytesServed.inc(end - start + 1)
    } catch (err) {
      if ((err as { code?: string }).code === 'CDN_ERR_CORRUPT') {
        this.metrics.chunkReads.inc({ result: 'corrupt' })
        this.onCorrupt(row, err as Error)
      }
      throw err
    }
  }

  /** Serves whole segments from the cache, reading (and caching) the ones missing; true if any came from disk. */
  private async writeCached(row: ChunkRow, start: number, end: number, res: ServerResponse): Promise<boolean> {
    const S = this.segmentSize
    let file: OpenFile | undefined
    let fromDisk = false
    try {
      for (let seg = Math.floor(start / S); seg <= Math.floor(end / S); seg++) {
        const segStart = seg * S
        let buf = this.cache!.get(`${row.sha256}:${seg}`)
        if (buf === undefined) {
          fromDisk = true
          file ??= await this.files.acquire(row)
          buf = await this.readSegment(file.fh, row, seg, segStart, Math.min(segStart + S, row.size))
        }
        const s = Math.max(start, segStart) - segStart
        const e = Math.min(end + 1, segStart + buf.length) - segStart
        if (!res.write(buf.subarray(s, e))) await drained(res)
      }
      return fromDisk
    } finally {
      file?.release()
    }
  }

  /** Reads just the blocks the range touches into pooled buffers, verifies and sends them. */
  private async writeFromDisk(row: ChunkRow, start: number, end: number, res: ServerResponse): Promise<true> {
    const file = await this.files.acquire(row)
    try {
      const last = end + 1
      const stop = Math.min(row.size, Math.ceil(last / BLOCK_SIZE) * BLOCK_SIZE)
      for (let from = start - (start % BLOCK_SIZE); from < stop;) {
        const to = Math.min(from + this.pool.size, stop)
        const buf = this.pool.take()
        let piece: Buffer
        try {
          piece = await this.store.readVerifiedInto(file.fh, row, buf, from, to)
        } catch (err) {
          this.pool.give(buf)
          throw err
        }
        // back to the pool only once the socket is done with these bytes (or failed)
        const more = res.write(piece.subarray(Math.max(start, from) - from, Math.min(last, to) - from), () => this.pool.give(buf))
        if (!more) await drained(res)
        from = to
      }
      return true
    } finally {
      file.release()
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

  /** Closes the files kept open (reads in flight finish first). */
  close(): void {
    this.files.closeAll()
  }

  /** Drops every cached segment and open file of a chunk (after it is found corrupt, deleted or replaced). */
  forget(row: ChunkRow): void {
    this.files.forget(row)
    if (!this.cache) return
    for (let seg = 0; seg * this.segmentSize < row.size; seg++) this.cache.delete(`${row.sha256}:${seg}`)
  }
}
