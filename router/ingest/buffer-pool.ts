/**
 * Chunk buffers for ingest, shared by every ingest in the process: at most
 * `max` buffers of `size` bytes ever exist, so ingest memory is bounded by
 * router.ingestMemoryBytes whatever the number or size of uploads. An ingest
 * that finds none free waits (its client is back-pressured), first come first
 * served. Buffers are reused, not freed: ingest is bursty and allocating
 * 64 MiB at a time fragments the heap.
 *
 * Progress is guaranteed: a buffer is held only by an ingest reading into it
 * or by its upload, and uploads never wait for a buffer.
 */
export class BufferPool {
  private readonly free: Buffer[] = []
  private created = 0
  private readonly waiters: { resolve: (b: Buffer) => void; reject: (e: Error) => void; signal?: AbortSignal; onAbort?: () => void }[] = []

  constructor(readonly size: number, readonly max: number) {
    if (max < 1) throw new Error('a buffer pool needs room for at least one buffer')
  }

  get inUse(): number {
    return this.created - this.free.length
  }

  acquire(signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error)
    const b = this.free.pop()
    if (b) return Promise.resolve(b)
    if (this.created < this.max) {
      this.created++
      return Promise.resolve(Buffer.allocUnsafeSlow(this.size))
    }
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

  release(b: Buffer): void {
    const w = this.waiters.shift()
    if (w) {
      if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort)
      w.resolve(b)
    } else this.free.push(b)
  }
}
