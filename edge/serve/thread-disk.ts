import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { HandleCache, type ReadHandle } from '../tiers/disk-handles.js'
import { DiskCrcs, type DiskRow } from '../tiers/disk-index.js'
import { ChunkFileReader, chunkPath, POOL_KEEP } from '../tiers/disk-read.js'
import type { Send, SendPiece } from './send.js'

/**
 * A serve thread's read-only copy of the disk tier (edge/tiers/disk-tier.ts):
 * which chunk files are readable, its own open file handles, its own read
 * buffers, and the one verified read path (edge/tiers/disk-read.ts), so a
 * thread reads and refuses exactly as the main thread does.
 *
 * The handshake with the main thread, which alone writes, evicts and purges:
 * - the main thread posts a chunk's row once its file is complete and in
 *   place (`added`: after the rename, the row already in SQLite), and posts
 *   its removal before it unlinks the file (`removed`: the row is deleted
 *   first). A thread opens only chunks in its copy, so after a removal has
 *   reached it, it opens that file no more;
 * - a read already open when a removal comes finishes on its descriptor. That
 *   is safe: a chunk file is never written in place (a new one is written
 *   under tmp/, fsynced and renamed over), and its name carries the chunk's
 *   digest, so every descriptor of it reads the same bytes, which are
 *   verified against the index's CRCs anyway. The unlinked file's space
 *   comes back when the handle closes: at once for an idle one (`drop`),
 *   after the last read for a held one, as in the main thread;
 * - a purge answers only after every thread confirmed it applied the
 *   messages posted before (ServeThreads.sync), so nothing of the title is
 *   opened by a thread after the purge has answered;
 * - the block CRCs come from the thread's own read-only connection to the
 *   index (DiskCrcs); a row deleted meanwhile reads as none, which is a miss
 *   (the request is relayed);
 * - a block that fails its CRC is never sent: the thread drops the chunk from
 *   its copy and tells the main thread (`corrupt`), which drops it for good
 *   (counted and logged once), as if its own read had found it.
 */
export class ThreadDisk {
  private readonly rows = new Map<string, DiskRow>()
  private readonly handles: HandleCache
  readonly reads: ChunkFileReader
  private readonly chunksDir: string
  private index: DiskCrcs | undefined

  constructor(private readonly dataDir: string, readSize: number, openFiles: number, private readonly corrupt: (key: string, block: number) => void) {
    this.chunksDir = join(dataDir, 'chunks')
    this.handles = new HandleCache(openFiles)
    // as many idle read buffers as the main thread keeps (POOL_KEEP): a thread answers as many players at once
    this.reads = new ChunkFileReader(readSize, POOL_KEEP, (row, block) => this.found(row, block))
  }

  has(key: string): boolean {
    return this.rows.has(key)
  }

  added(rows: DiskRow[]): void {
    for (const r of rows) this.rows.set(r.key, r)
  }

  removed(keys: string[]): void {
    for (const k of keys) {
      this.rows.delete(k)
      this.handles.drop(k)
    }
  }

  /** The chunk's row and a handle on its file, or undefined (not in the copy, or gone): a miss. Pair with `release`. */
  async open(key: string): Promise<{ row: DiskRow; h: ReadHandle } | undefined> {
    const row = this.rows.get(key)
    if (row === undefined) return undefined
    const h = await this.handles.acquire(key, chunkPath(this.chunksDir, row), () => this.crcs(key))
    return h === undefined ? undefined : { row, h }
  }

  release(h: ReadHandle): void {
    this.handles.release(h)
  }

  /** Bytes [from, to] of the chunk as the response's whole body, each piece verified before it is handed to `send`. */
  writeRange(row: DiskRow, h: ReadHandle, from: number, to: number, res: ServerResponse, send: SendPiece, ends: Send['end']): Promise<void> {
    return this.reads.writeRange(row, h, from, to, res, send, ends)
  }

  async close(): Promise<void> {
    this.rows.clear()
    await this.handles.closeAll()
    this.index?.close()
  }

  private crcs(key: string): Buffer | undefined {
    // opened at the first read: a thread of an edge whose disk tier stays empty never touches SQLite
    this.index ??= new DiskCrcs(join(this.dataDir, 'index.sqlite'))
    return this.index.crcs(key)
  }

  private found(row: DiskRow, block: number): void {
    this.removed([row.key])
    this.corrupt(row.key, block)
  }
}
