import type { Logger } from '../../lib/logger.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { chunkName } from '../../lib/ids.js'
import type { ChunkRef } from '../title.js'

/**
 * The disk tier's write queue: verified chunks waiting for its one writer,
 * bounded in bytes (the chunk being written counts until its write ends).
 *
 * Theory of operation. The queue holds the only reference to a chunk the RAM
 * tier did not keep (every chunk on a disk-only edge), so its bound is memory
 * (README "Memory"). `add` never blocks: a chunk that would take the queue
 * past its bytes is dropped, except into an empty queue, which takes any one
 * chunk (a bound smaller than a chunk must not stop every write). One writer
 * (`drain`) takes chunks in arrival order and hands each to `store`; it is
 * started by the first `add` after the queue ran empty, so there is never more
 * than one. While a chunk waits or is written its Buffer is readable
 * (`staged`), so the edge serves it instead of fetching it again. Readahead
 * and prefill ask `room` before starting a fill, with their chunk plus every
 * fill in flight, so what players fill finds room; a drop is then the rare
 * case of players alone outrunning the disk. A purge removes the title's
 * waiting chunks and marks the one being written `cancelled`, which `store`
 * checks before it makes the file visible. Drops are counted by reason.
 */
export interface WriteJob {
  ref: ChunkRef
  buf: Buffer
  /** set by a purge while the job is being written: `store` must not make it visible */
  cancelled: boolean
}

export type WriteDropReason = 'queue_full' | 'purged'

export class WriteQueue {
  /** chunks waiting, in arrival order */
  private readonly waiting = new Map<string, WriteJob>()
  private current: WriteJob | null = null
  private bytes = 0
  private writer: Promise<void> | null = null

  constructor(
    private readonly limitBytes: number,
    private readonly store: (job: WriteJob) => Promise<void>,
    private readonly metrics: EdgeMetrics,
    private readonly logger: Logger,
  ) {}

  /** Chunks waiting or being written. */
  get size(): number {
    return this.waiting.size + (this.current ? 1 : 0)
  }

  /** Bytes of the chunks waiting or being written: the memory the queue holds. */
  get pendingBytes(): number {
    return this.bytes
  }

  /** Waiting or being written (a second add of it would be a no-op). */
  has(key: string): boolean {
    return this.waiting.has(key) || this.current?.ref.key === key
  }

  /** Whether `bytes` more would fit now. */
  room(bytes: number): boolean {
    return this.bytes + bytes <= this.limitBytes
  }

  /** The Buffer of a chunk waiting or being written (not one a purge cancelled); undefined otherwise. */
  staged(key: string): Buffer | undefined {
    const job = this.waiting.get(key) ?? (this.current?.ref.key === key && !this.current.cancelled ? this.current : undefined)
    return job?.buf
  }

  /** Queues a chunk not already queued; drops it (counted) if it does not fit. */
  add(ref: ChunkRef, buf: Buffer): void {
    if (this.has(ref.key)) return
    if (this.bytes > 0 && !this.room(buf.length)) return this.dropped('queue_full')
    this.waiting.set(ref.key, { ref, buf, cancelled: false })
    this.account(buf.length)
    this.writer ??= this.drain().finally(() => { this.writer = null })
  }

  dropped(reason: WriteDropReason): void {
    this.metrics.diskWrites.inc({ result: 'dropped' })
    this.metrics.diskWriteDrops.inc({ reason })
  }

  /** Drops the title's waiting chunks; the one being written, if it is the title's, is cancelled. */
  purge(contentId: string): void {
    for (const [key, job] of this.waiting) {
      if (job.ref.contentId !== contentId) continue
      this.waiting.delete(key)
      this.account(-job.buf.length)
      this.dropped('purged')
    }
    if (this.current?.ref.contentId === contentId) this.current.cancelled = true
  }

  /** Resolves when nothing waits or is being written. */
  async idle(): Promise<void> {
    while (this.writer) await this.writer
  }

  private account(delta: number): void {
    this.bytes += delta
    this.metrics.diskWriteQueueBytes.set(this.bytes)
  }

  private async drain(): Promise<void> {
    for (let job = this.shift(); job; job = this.shift()) {
      this.current = job
      try {
        await this.store(job)
      } catch (err) {
        this.metrics.diskWrites.inc({ result: 'failed' })
        this.logger.error({ chunk: chunkName(job.ref.contentId, job.ref.index), err: (err as Error).message }, 'disk tier: write failed, chunk kept in RAM only')
      }
      this.current = null
      this.account(-job.buf.length)
    }
  }

  private shift(): WriteJob | undefined {
    const first = this.waiting.values().next()
    if (first.done) return undefined
    this.waiting.delete(first.value.ref.key)
    return first.value
  }
}
