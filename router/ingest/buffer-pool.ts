/**
 * Chunk buffers for ingest, shared by every ingest in the process: at most
 * `max` buffers of `size` bytes are lent at once, so ingest memory is bounded
 * by router.ingestMemoryBytes whatever the number or size of uploads. An
 * ingest that finds none free waits (its client is back-pressured), first
 * come first served. Buffers are reused, not freed: ingest is bursty and
 * allocating 64 MiB at a time fragments the heap.
 *
 * Ownership. `acquire` hands out a Lease, never a bare Buffer: the lease is
 * the only way to reach the buffer and to give it back, and it can be settled
 * once — `release()` (back for reuse) or `retire()` (dropped) — after which
 * its `buf` throws. A second settle throws too, and the pool itself refuses a
 * buffer it did not lend. A buffer given back twice would be lent to two
 * chunks at once, each overwriting the other while it is being sent (issue
 * 14: healthy shards refused the wrong bytes with a digest mismatch).
 *
 * `retire()` is for a buffer something else may still read: a PUT that failed
 * or was cut may leave bytes of it queued on a socket. The pool forgets it and
 * lends a new one in its place; the old one is garbage once the socket lets go.
 *
 * Progress is guaranteed: a buffer is held only by an ingest reading into it
 * or by its upload, and uploads never wait for a buffer.
 */
export class BufferPool {
  private readonly free: Buffer[] = []
  private readonly lent = new Set<Buffer>()
  private readonly waiters: { resolve: (l: Lease) => void; reject: (e: Error) => void; signal?: AbortSignal; onAbort?: () => void }[] = []

  constructor(readonly size: number, readonly max: number) {
    if (max < 1) throw new Error('a buffer pool needs room for at least one buffer')
  }

  get inUse(): number {
    return this.lent.size
  }

  get idle(): number {
    return this.free.length
  }

  acquire(signal?: AbortSignal): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error)
    if (this.free.length > 0 || this.lent.size + this.free.length < this.max) return Promise.resolve(this.lend(this.free.pop()))
    return new Promise((resolve, reject) => {
      const w: (typeof this.waiters)[number] = { resolve, reject, signal }
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w)
          if (i >= 0) this.waiters.splice(i, 1)
          reject(signal.reason as Error)
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.waiters.push(w)
    })
  }

  private lend(b: Buffer = Buffer.allocUnsafeSlow(this.size)): Lease {
    this.lent.add(b)
    return new Lease(b, (buf, reuse) => this.giveBack(buf, reuse))
  }

  private giveBack(b: Buffer, reuse: boolean): void {
    if (!this.lent.delete(b)) throw new Error('a buffer the pool did not lend, or lent and got back already, was given back')
    const w = this.waiters.shift()
    if (w) {
      if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
      w.resolve(this.lend(reuse ? b : undefined))
    } else if (reuse) this.free.push(b)
  }
}

/** One loan of a pool buffer: settled exactly once, by release() or retire(). */
export class Lease {
  private b: Buffer | undefined

  constructor(b: Buffer, private readonly settle: (b: Buffer, reuse: boolean) => void) {
    this.b = b
  }

  get buf(): Buffer {
    if (!this.b) throw new Error('a pool buffer was used after it was given back')
    return this.b
  }

  get settled(): boolean {
    return this.b === undefined
  }

  /** Back to the pool, to be lent again: only once nothing reads or writes it any more. */
  release(): void {
    this.end(true)
  }

  /** Dropped from the pool (which lends a new one in its place): something may still read it. */
  retire(): void {
    this.end(false)
  }

  private end(reuse: boolean): void {
    const b = this.b
    if (!b) throw new Error('a pool buffer lease was settled twice')
    this.b = undefined
    this.settle(b, reuse)
  }
}
