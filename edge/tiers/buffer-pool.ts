/**
 * Read buffers for the disk tier, reused instead of allocated per read: a
 * fresh 1 MiB Buffer per read costs page faults to map it and, at gigabytes a
 * second, drives V8's external-memory pressure into frequent full GCs.
 *
 * Ownership: `take` hands a buffer to exactly one reader, who gives it back
 * with `give` only once nothing references its bytes any more: for a piece
 * written to a player, from the write's callback (the socket has copied it to
 * the kernel). A buffer that is never given back (a response cut mid-write)
 * is simply garbage-collected; the pool never hands out a buffer it has not
 * been given back. At most `keep` idle buffers are held; more are dropped.
 */
export class BufferPool {
  private readonly free: Buffer[] = []
  /** buffers handed out that had to be allocated (the pool was empty) */
  allocated = 0

  constructor(readonly size: number, private readonly keep: number) {}

  take(): Buffer {
    const b = this.free.pop()
    if (b !== undefined) return b
    this.allocated++
    return Buffer.allocUnsafeSlow(this.size)
  }

  give(b: Buffer): void {
    if (b.length === this.size && this.free.length < this.keep) this.free.push(b)
  }

  get idle(): number {
    return this.free.length
  }
}
