import type { Logger } from '../../lib/logger.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { refName, type ChunkRef } from '../title.js'
import { dropChunk, holdChunk } from './chunk-arena.js'

/**
 * The disk tier's write queue: verified chunks waiting for its writers,
 * bounded in bytes (a chunk being written counts until its write ends).
 *
 * Theory of operation. The queue holds the only reference to a chunk the RAM
 * tier did not keep (every chunk on a disk-only edge), so its bound is memory
 * (README "Memory"). `add` never blocks: a chunk that would take the queue
 * past its bytes is dropped, except into an empty queue, which takes any one
 * chunk (a bound smaller than a chunk must not stop every write). For the same
 * reason the bound `room` answers by is never less than the largest chunk
 * size the upstream's manifests gave (`chunkSize`): readahead and prefill,
 * which ask for room for a whole chunk, would otherwise never start. WRITERS
 * writers take chunks in arrival order and hand each to `store`; `add` starts
 * one while fewer run, and a writer ends when nothing waits. While a chunk
 * waits or is written its Buffer is readable (`staged`), so the edge serves it
 * instead of fetching it again. Readahead and prefill ask `room` before
 * starting a fill, with their chunk plus every fill in flight, so what players
 * fill finds room; a drop is then the rare case of players alone outrunning
 * the disk.
 *
 * Why two writers: a write is a chain of file-system calls (open, write,
 * fsync, close, mkdir, rename), each waiting for libuv's thread pool and then
 * for the event loop. On a busy edge one chain took 140 ms per 8 MiB chunk at
 * the median (18 ms on an idle one): one writer used about 5 % of the disk's
 * bandwidth, and a third of the chunks were dropped; with two chains in
 * flight, and two fewer waits in each (DiskTier.store), none were in four
 * runs, a premiere at 8× speed included (docs/benchmarks.md, issue 14 item
 * 3). Two, not more: a write evicted by the other's insert is wasted, and the
 * temporary files on disk are one per writer.
 *
 * Cancelling. A purge removes the title's waiting chunks and cancels its
 * chunks being written; the tier cancels a chunk being written that its
 * policy evicted meanwhile (the other writer's insert can choose it). `store`
 * checks `cancelled` before it makes the file visible, and after. Drops are
 * counted by reason; a write abandoned because the policy evicted its chunk
 * is not a drop (the policy chose), and is counted as such.
 *
 * A cancelled write stays in `writing` until its file calls return, but it no
 * longer stands for its chunk: the same chunk filled again meanwhile (a purge,
 * then a player) is queued as a new job, not taken for a duplicate. The two
 * jobs of one key never run at once: a writer passes over a waiting job whose
 * key is still being written, and the writer of the cancelled job takes it
 * next. Run together, the abandoned write's clean-up (it removes the key from
 * the policy and the index, and unlinks the file at the chunk's path) would
 * undo the new one.
 *
 * A job holds its chunk's memory (edge/tiers/chunk-arena.ts) from `add` until
 * its write's file calls have all returned, or until a purge removes it
 * waiting: the slot is not reused while the thread pool may still read it.
 */
export type WriteDropReason = 'queue_full' | 'purged'
/** why a write in progress must not become visible: its title was purged, or the policy evicted it */
export type CancelReason = 'purged' | 'evicted'

export interface WriteJob {
  ref: ChunkRef
  buf: Buffer
  /** the block list the fill checked `buf` against, if any (the disk tier keeps it as the chunk's CRCs) */
  crcs?: Buffer | undefined
  /** set while it is being written, or false */
  cancelled: false | CancelReason
}

/** writes in flight at once (see above) */
const WRITERS = 2

export class WriteQueue {
  /** chunks waiting, in arrival order */
  private readonly waiting = new Map<string, WriteJob>()
  /** chunks being written */
  private readonly writing = new Map<string, WriteJob>()
  /** writers running; counted down in the same step as a writer finds nothing left, so `add` never misses one ending */
  private writers = 0
  private idleWaiters: (() => void)[] = []
  private bytes = 0
  /** the largest chunk size the upstream's manifests gave: the queue holds at least one such chunk */
  private chunkBytes = 0

  constructor(
    private readonly limitBytes: number,
    private readonly store: (job: WriteJob) => Promise<void>,
    private readonly metrics: EdgeMetrics,
    private readonly logger: Logger,
  ) {}

  /** Chunks waiting or being written. */
  get size(): number {
    return this.waiting.size + this.writing.size
  }

  /** Bytes of the chunks waiting or being written: the memory the queue holds. */
  get pendingBytes(): number {
    return this.bytes
  }

  /** Waiting or being written, not cancelled (a second add of it would be a no-op). */
  has(key: string): boolean {
    return this.waiting.has(key) || this.writing.get(key)?.cancelled === false
  }

  /** Whether `bytes` more would fit now. */
  room(bytes: number): boolean {
    return this.bytes + bytes <= Math.max(this.limitBytes, this.chunkBytes)
  }

  /**
   * The upstream's chunk size, from a manifest. True only the first time a
   * chunk size is found larger than the queue's bound (the caller warns once):
   * from then on the queue holds one chunk at a time.
   */
  chunkSize(bytes: number): boolean {
    if (bytes <= this.chunkBytes) return false
    const first = this.chunkBytes <= this.limitBytes && bytes > this.limitBytes
    this.chunkBytes = bytes
    return first
  }

  /** The Buffer of a chunk waiting or being written (not a cancelled one); undefined otherwise. */
  staged(key: string): Buffer | undefined {
    const job = this.waiting.get(key) ?? this.writing.get(key)
    return job && !job.cancelled ? job.buf : undefined
  }

  /** Queues a chunk not already queued (a cancelled write of it does not count); drops it (counted) if it does not fit. */
  add(ref: ChunkRef, buf: Buffer, crcs?: Buffer): void {
    if (this.has(ref.key)) return
    if (this.bytes > 0 && !this.room(buf.length)) return this.dropped('queue_full')
    this.waiting.set(ref.key, { ref, buf, crcs, cancelled: false })
    holdChunk(buf)
    this.account(buf.length)
    if (this.writers < WRITERS) {
      this.writers++
      void this.drain()
    }
  }

  dropped(reason: WriteDropReason): void {
    this.metrics.diskWrites.inc({ result: 'dropped' })
    this.metrics.diskWriteDrops.inc({ reason })
  }

  /** A write `store` gave up on: a purge's is a drop; an eviction is the policy's choice (it counts among evictions), not a drop. */
  abandoned(reason: CancelReason): void {
    if (reason === 'purged') this.dropped('purged')
    else this.metrics.diskWrites.inc({ result: 'evicted' })
  }

  /** A chunk being written must not become visible (a waiting one cannot be evicted: the policy has not seen it). */
  cancel(key: string, reason: CancelReason): void {
    const job = this.writing.get(key)
    if (job && !job.cancelled) job.cancelled = reason
  }

  /** Drops the title's waiting chunks and cancels those being written. */
  purge(contentId: string): void {
    for (const [key, job] of this.waiting) {
      if (job.ref.contentId !== contentId) continue
      this.waiting.delete(key)
      this.account(-job.buf.length)
      dropChunk(job.buf)
      this.dropped('purged')
    }
    for (const [key, job] of this.writing) if (job.ref.contentId === contentId) this.cancel(key, 'purged')
  }

  /** Resolves when nothing waits or is being written. */
  async idle(): Promise<void> {
    if (this.writers > 0) await new Promise<void>(resolve => this.idleWaiters.push(resolve))
  }

  private account(delta: number): void {
    this.bytes += delta
    this.metrics.diskWriteQueueBytes.set(this.bytes)
  }

  /** One writer: stores waiting chunks until none is left (`store` failures are counted here, never thrown). */
  private async drain(): Promise<void> {
    for (let job = this.shift(); job; job = this.shift()) {
      this.writing.set(job.ref.key, job)
      try {
        await this.store(job)
      } catch (err) {
        this.metrics.diskWrites.inc({ result: 'failed' })
        this.logger.error({ chunk: refName(job.ref), err: (err as Error).message }, 'disk tier: write failed, chunk kept in RAM only')
      }
      this.writing.delete(job.ref.key)
      this.account(-job.buf.length)
      dropChunk(job.buf)
    }
    // nothing left, in the same step as the last shift: an `add` from here on starts a writer
    if (--this.writers === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
  }

  /** The first waiting job whose key is not being written (see "A cancelled write" above). */
  private shift(): WriteJob | undefined {
    for (const job of this.waiting.values()) {
      if (this.writing.has(job.ref.key)) continue
      this.waiting.delete(job.ref.key)
      return job
    }
    return undefined
  }
}
