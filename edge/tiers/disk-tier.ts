import { randomBytes } from 'node:crypto'
import { mkdir, rename, rm, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from '../../lib/logger.js'
import type { EdgeMetrics, TierStats } from '../../lib/metrics.js'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import type { DiskIndex, DiskRow } from './disk-index.js'
import type { BufferPool } from './buffer-pool.js'
import { ChunkFileReader, chunkPath, POOL_KEEP, type Found } from './disk-read.js'
import { HandleCache, type ReadHandle } from './disk-handles.js'
import { WriteQueue, type WriteJob } from './disk-writes.js'
import { ChunkFileWriter } from './chunk-file-write.js'
import { dropChunk } from './chunk-arena.js'
import type { EvictionPolicy } from '../policy/policy.js'
import type { Send, SendPiece } from '../serve/send.js'
import { refName, type ChunkRef } from '../title.js'

/**
 * The disk tier: one file per verified chunk under `chunks/<contentId>/<index>-<sha256>.chunk`
 * (a rendition's: `chunks/<contentId>/<rid>.<index>-<sha256>.chunk`, in its title's directory,
 * so a purge or a listing of the title finds it there; a rendition id has no dot),
 * indexed in SQLite with per-block CRC32Cs, bounded in bytes by its policy.
 *
 * Who owns what. `entries` (in memory) lists the files that are complete and
 * readable; the policy holds those keys plus the ones being written, so the
 * bytes on disk never exceed the capacity: victims are unlinked before a new
 * file is written (a victim still being written is cancelled, and its
 * temporary file lasts until its current file-system call returns). Reads verify every block they touch against its CRC, so a
 * file damaged on disk is dropped, never served. Access order is kept as
 * sequence numbers, flushed to SQLite in batches, so a restart rebuilds LRU order.
 *
 * Verified chunks reach `store` through a write queue bounded in bytes
 * (edge/tiers/disk-writes.ts): `write` never blocks, a chunk waiting there is
 * readable (`staged`), and `room` tells readahead and prefill whether the
 * queue can take their chunk besides the fills in flight.
 *
 * A chunk's file is written from its memory straight to the device where it
 * can be, else through the page cache (chunk-file-write.ts).
 *
 * Crash safety (kill -9 at any point): a file is written to tmp/, fsynced,
 * indexed, then renamed into place; a removal deletes the row, then the file.
 * At start-up `recoverDisk` wipes tmp/, drops rows whose file is missing or
 * short, and deletes files without a row.
 */

/** Told of every chunk file that becomes readable or stops being (the serve threads' copy of the tier: edge/serve/thread-disk.ts). */
export interface DiskWatcher {
  added(rows: DiskRow[]): void
  removed(keys: string[]): void
}

export interface DiskTierOptions {
  readSize: number
  /** bytes of verified chunks waiting for the disk, the one being written included; an empty queue takes any one chunk */
  writeQueueBytes: number
  accessFlushMs: number
  /** chunk files kept open between reads */
  openFiles: number
  /** how often the policy's state is saved to the index (also at close); 0: only at close */
  policyStateFlushMs?: number
  /** allocates a whole chunk read for promotion to RAM, with one hold (the edge's chunk arena: the RAM tier's chunks live in its slots, chunk-arena.ts) */
  alloc?: (size: number) => Buffer
  /** edge.diskDirectWrites: chunk files written with O_DIRECT where they can be (chunk-file-write.ts); default false */
  directWrites?: boolean
}

export class DiskTier {
  readonly chunksDir: string
  readonly tmpDir: string
  private readonly entries = new Map<string, DiskRow>()
  private readonly touched = new Map<string, number>()
  private readonly writes: WriteQueue
  /** writes each chunk's file: direct to the device where it can (edge.diskDirectWrites) */
  readonly files: ChunkFileWriter
  /** title directories under chunks/ made since start-up */
  private readonly titleDirs = new Set<string>()
  private readonly flushTimer: NodeJS.Timeout
  private readonly stateTimer: NodeJS.Timeout | undefined
  /** set by anything that changes the policy's state since the last save */
  private stateDirty = false
  private readonly handles: HandleCache
  private readonly reads: ChunkFileReader
  /** told of every chunk that becomes readable or stops being (the serve threads' copy of `entries`) */
  private watcher: DiskWatcher | undefined
  seq = 0

  constructor(
    readonly dir: string,
    readonly policy: EvictionPolicy,
    readonly index: DiskIndex,
    private readonly metrics: EdgeMetrics,
    private readonly logger: Logger,
    private readonly opts: DiskTierOptions,
  ) {
    this.chunksDir = join(dir, 'chunks')
    this.tmpDir = join(dir, 'tmp')
    this.flushTimer = setInterval(() => this.flushAccess(), opts.accessFlushMs).unref()
    this.handles = new HandleCache(opts.openFiles)
    this.reads = new ChunkFileReader(opts.readSize, POOL_KEEP, (row, block, by) => this.corrupt(row, block, by))
    this.writes = new WriteQueue(opts.writeQueueBytes, job => this.store(job), metrics, logger)
    this.files = new ChunkFileWriter(opts.directWrites === true, logger)
    if (opts.policyStateFlushMs) this.stateTimer = setInterval(() => this.savePolicyState(), opts.policyStateFlushMs).unref()
  }

  path(r: Pick<DiskRow, 'contentId' | 'rid' | 'index' | 'sha256'>): string {
    return chunkPath(this.chunksDir, r)
  }

  /** read buffers of readSize + one block (a readSize range at any offset is one read) */
  get pool(): BufferPool {
    return this.reads.pool
  }

  /** Tells `w` of every readable chunk now, and of every one that comes or goes from now on (the serve threads). */
  watch(w: DiskWatcher): void {
    this.watcher = w
    if (this.entries.size > 0) w.added([...this.entries.values()])
  }

  /** A lookup that counts for the policy and the recency order. */
  get(key: string): DiskRow | undefined {
    const row = this.entries.get(key)
    if (row === undefined) {
      this.policy.miss(key)
      return undefined
    }
    this.policy.hit(key)
    this.touched.set(key, ++this.seq)
    this.stateDirty = true
    return row
  }

  has(key: string): boolean {
    return this.entries.has(key)
  }

  /** A hit served elsewhere (a serve thread) counted for the policy and the recency order, as `get` would; its row, if still held. */
  touch(key: string): DiskRow | undefined {
    const row = this.entries.get(key)
    if (row === undefined) return undefined
    this.policy.hit(key)
    this.touched.set(key, ++this.seq)
    this.stateDirty = true
    return row
  }

  /** Chunks queued or being written. */
  get pendingWrites(): number {
    return this.writes.size
  }

  /** Bytes held by the write queue, the chunk being written included. */
  get pendingBytes(): number {
    return this.writes.pendingBytes
  }

  /** Whether the write queue can take `bytes` more now (readahead and prefill ask with their chunk plus every fill in flight). */
  room(bytes: number): boolean {
    return this.policy.capacity === 0 || this.writes.room(bytes)
  }

  /**
   * The upstream's chunk size, learned from a manifest. A write queue smaller
   * than one chunk takes one at a time (WriteQueue.chunkSize), and every
   * chunk verified while one is written is dropped: said once, naming both
   * settings. (The start-up check compares the queue with this edge's own
   * cluster.chunkSize, which need not be its router's.)
   */
  upstreamChunkSize(bytes: number): void {
    if (this.policy.capacity === 0 || !this.writes.chunkSize(bytes)) return
    this.logger.warn({ diskWriteQueueBytes: this.opts.writeQueueBytes, chunkSize: bytes },
      `edge.diskWriteQueueBytes (${this.opts.writeQueueBytes}) is smaller than one chunk of the upstream (cluster.chunkSize ${bytes}, from a manifest): ` +
      `the disk tier writes one chunk at a time and drops chunks verified meanwhile; set edge.diskWriteQueueBytes to at least edge.maxFills × ${bytes}`)
  }

  /** A verified chunk waiting for (or in) its write: its Buffer; undefined otherwise. */
  staged(key: string): Buffer | undefined {
    return this.writes.staged(key)
  }

  /** `staged` for a player read (the RAM tier serves it): counts for the policy as `get` would. */
  readStaged(key: string): Buffer | undefined {
    const buf = this.staged(key)
    if (buf !== undefined) {
      if (this.policy.has(key)) this.policy.hit(key)
      else this.policy.miss(key)
    }
    return buf
  }

  /** Is this chunk queued or being written (not readable yet, but on its way)? */
  writing(key: string): boolean {
    return this.writes.has(key)
  }

  /** What inserting `key` (`bytes` long) would evict now, `key` itself if refused (prefill's admission check). */
  victims(key: string, bytes: number): string[] {
    return this.policy.victims(key, bytes)
  }

  /**
   * Adopts a row found valid at start-up (call in access order). Returns the keys
   * the policy pushed out, `row.key` included if it was refused (say the tier
   * was made smaller): the caller removes them.
   */
  adopt(row: DiskRow): string[] {
    const drop = this.policy.has(row.key) ? [] : this.policy.insert(row.key, row.size)
    if (this.policy.has(row.key)) {
      this.entries.set(row.key, row)
      this.watcher?.added([row])
    }
    this.seq = Math.max(this.seq, row.lastAccess)
    return drop
  }

  /**
   * Restores the policy's saved state for the rows found valid at start-up
   * (call before `adopt`). Returns whether it was restored; if it was, `adopt`
   * takes the rows the snapshot knew without re-inserting them (their place in
   * the queues is the saved one) and inserts only rows written after it.
   */
  restorePolicyState(rows: readonly DiskRow[]): boolean {
    if (!this.policy.restore) return false
    let json: string | undefined
    try {
      json = this.index.loadPolicyState('disk')
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'disk tier: could not read the saved policy state, starting cold')
    }
    if (json === undefined) return false
    const sizes = new Map(rows.map(r => [r.key, r.size]))
    try {
      return this.policy.restore(JSON.parse(json), k => sizes.get(k))
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'disk tier: saved policy state unreadable, starting cold')
      return false
    }
  }

  /** Saves the policy's state to the index if it changed; a failure is logged (eviction quality is not worth an outage). */
  savePolicyState(): void {
    if (!this.stateDirty || !this.policy.snapshot) return
    try {
      this.index.savePolicyState('disk', JSON.stringify(this.policy.snapshot()))
      this.stateDirty = false
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'disk tier: could not save the policy state')
    }
  }

  /**
   * Queues a verified chunk for the disk (see WriteQueue: never blocks, drops
   * past its bytes). Nothing to do for a chunk already on disk. `crcs`: the
   * block list its fill checked every block against (the manifest anchors
   * it), kept as the chunk's CRCs; without one they are taken from `buf`.
   */
  write(ref: ChunkRef, buf: Buffer, crcs?: Buffer): void {
    if (this.policy.capacity === 0 || this.entries.has(ref.key)) return
    this.writes.add(ref, buf, crcs)
  }

  private async store(job: WriteJob): Promise<void> {
    const { ref, buf } = job
    this.stateDirty = true
    // its place in the recency order is where the policy took it, whichever of the two writes ends first
    const lastAccess = ++this.seq
    const drop = this.policy.insert(ref.key, ref.size)
    if (drop.length) this.metrics.evictions.inc({ tier: 'disk' }, drop.length)
    const removals = Promise.all(drop.filter(k => k !== ref.key).map(k => this.remove(k)))
    if (!this.policy.has(ref.key)) {
      await removals
      return
    }
    const tmp = join(this.tmpDir, `${randomBytes(12).toString('hex')}.part`)
    const dest = this.path(ref)
    const dir = dirname(dest)
    try {
      // each step waits for the thread pool and then the event loop, which a busy edge makes long:
      // the victims' files go while this one is created (its bytes are written once they are gone)
      const opening = this.files.open(tmp, buf)
      // a removal that fails must not leave the new file's handle open
      const [out] = await Promise.all([opening, removals]).catch(async (err: unknown) => {
        await opening.then(o => o.fh.close().catch(() => {}), () => {})
        throw err
      })
      await this.files.write(out, buf)
      if (job.cancelled) throw new Error(`${job.cancelled} while being written`)
      const row: DiskRow = { key: ref.key, contentId: ref.contentId, rid: ref.rid, index: ref.index, sha256: ref.sha256, size: ref.size,
        storedAt: Date.now(), lastAccess }
      this.index.insert(row, job.crcs ?? blockCrcs(buf))
      // a title's directory is made once (nothing removes one while the edge runs; a failure forgets it)
      if (!this.titleDirs.has(dir)) {
        await mkdir(dir, { recursive: true })
        this.titleDirs.add(dir)
      }
      if (job.cancelled) throw new Error(`${job.cancelled} while being written`)
      await rename(tmp, dest)
      if (job.cancelled || !this.policy.has(ref.key)) {
        // purged or evicted during the rename: the removal could not see the file yet
        await this.remove(ref.key, row)
        return this.writes.abandoned(job.cancelled || 'evicted')
      }
      this.entries.set(ref.key, row)
      this.watcher?.added([row])
      this.metrics.diskWrites.inc({ result: 'ok' })
    } catch (err) {
      this.titleDirs.delete(dir)
      this.policy.remove(ref.key)
      this.index.delete(ref.key)
      await rm(tmp, { force: true })
      if (job.cancelled) return this.writes.abandoned(job.cancelled)
      throw err
    }
  }

  /** Removes a chunk: row first, then file (see the crash rules above). */
  async remove(key: string, known?: DiskRow): Promise<void> {
    // being written (the other writer's insert evicted it): that write must not make it visible
    this.writes.cancel(key, 'evicted')
    const row = this.entries.get(key) ?? known
    // the threads stop opening it before its file goes (a read in flight finishes on its descriptor: the same, verified bytes)
    if (this.entries.delete(key)) this.watcher?.removed([key])
    this.touched.delete(key)
    this.policy.remove(key)
    this.stateDirty = true
    this.index.delete(key)
    this.handles.drop(key)
    if (row) await unlink(this.path(row)).catch(() => {})
  }

  /**
   * A new byte bound (a config reload): the policy picks the victims, which go
   * as an eviction does (row, then file; a write in progress is cancelled). A
   * read in flight finishes on its open descriptor: the same, verified bytes.
   */
  async resize(capacity: number): Promise<number> {
    const drop = this.policy.resize(capacity)
    this.stateDirty = true
    if (drop.length) this.metrics.evictions.inc({ tier: 'disk' }, drop.length)
    await Promise.all(drop.map(k => this.remove(k)))
    return drop.length
  }

  /** Opens a chunk for reading; undefined if it has gone (evicted or lost), which the caller treats as a miss. Pair with `release`. */
  async openRead(row: DiskRow): Promise<ReadHandle | undefined> {
    const h = await this.handles.acquire(row.key, this.path(row), () => this.index.crcs(row.key))
    if (h === undefined && this.entries.get(row.key) === row) await this.remove(row.key)
    return h
  }

  release(h: ReadHandle): void {
    this.handles.release(h)
  }

  /** Sends bytes [start, end] (inclusive) of a chunk, verified piece by piece (ChunkFileReader.writeRange). */
  writeRange(row: DiskRow, h: ReadHandle, start: number, end: number, res: Parameters<SendPiece>[0], send: SendPiece, ends?: Send['end']): Promise<void> {
    return this.reads.writeRange(row, h, start, end, res, send, ends)
  }

  /**
   * The whole chunk, verified (for promotion to RAM); undefined if it is gone.
   * Its Buffer comes from `alloc` (the edge's chunk arena) with one hold, the
   * caller's: drop it (`dropChunk`) once the RAM tier took its own.
   */
  async readAll(row: DiskRow): Promise<Buffer | undefined> {
    const h = await this.openRead(row)
    if (!h) return undefined
    try {
      const buf = this.opts.alloc?.(row.size) ?? Buffer.allocUnsafeSlow(row.size)
      try {
        await this.reads.readVerified(row, h, 0, buf, 'promotion')
      } catch (err) {
        dropChunk(buf)
        throw err
      }
      return buf
    } finally {
      this.release(h)
    }
  }

  /** A block of `row` failed its CRC (or the file was short): counted, logged and the chunk dropped, once, whichever reader found it. */
  private async corrupt(row: DiskRow, block: number, by: Found): Promise<void> {
    this.metrics.corrupt.inc({ found_by: by })
    this.logger.error({ chunk: refName(row), block }, 'disk tier: corrupt block, chunk dropped')
    await this.remove(row.key)
  }

  /**
   * A serve thread found block `block` of chunk `key` corrupt (its read was
   * refused; the main thread owns removal): dropped as if found here, unless
   * it has gone already (the relayed request may have found it first).
   */
  async corruptElsewhere(key: string, block: number): Promise<void> {
    const row = this.entries.get(key)
    if (row !== undefined) await this.corrupt(row, block, 'thread')
  }

  /** Drops every chunk of a title, including queued and in-progress writes; returns how many were stored. */
  async purge(contentId: string): Promise<number> {
    this.writes.purge(contentId)
    const keys = this.index.keysOf(contentId)
    for (const k of keys) await this.remove(k)
    return keys.length
  }

  flushAccess(): void {
    try {
      this.index.touch(this.touched)
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'disk tier: could not record access order')
    }
    this.touched.clear()
  }

  /** Resolves when the write queue is empty. */
  async idle(): Promise<void> {
    await this.writes.idle()
  }

  stats(): TierStats {
    return { bytes: this.policy.size, entries: this.entries.size, capacity: this.policy.capacity }
  }

  /** Waits for queued writes, records access order, stops the timer. The index is closed by the owner. */
  async close(): Promise<void> {
    clearInterval(this.flushTimer)
    clearInterval(this.stateTimer)
    await this.idle()
    this.flushAccess()
    this.savePolicyState()
    await this.handles.closeAll()
  }
}
