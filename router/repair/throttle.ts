/**
 * A token bucket in bytes: `take(n)` resolves when n bytes may pass at
 * `rateMBps` (decimal MB/s). Burst is one second's worth, so short pauses do
 * not bank unlimited credit. Rate 0 lets everything through. Callers share
 * one bucket, so concurrent copies split the rate between them.
 */
export class Throttle {
  private tokens: number
  private last = performance.now()
  private readonly perMs: number
  private readonly burst: number

  constructor(rateMBps: number) {
    this.perMs = rateMBps * 1e6 / 1000
    this.burst = rateMBps * 1e6
    this.tokens = this.burst
  }

  async take(n: number): Promise<void> {
    if (this.perMs === 0) return
    for (;;) {
      const now = performance.now()
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.perMs)
      this.last = now
      if (this.tokens >= Math.min(n, this.burst)) {
        this.tokens -= n
        return
      }
      await new Promise(r => setTimeout(r, Math.ceil((Math.min(n, this.burst) - this.tokens) / this.perMs)))
    }
  }

  /** Passes a stream through the bucket. */
  async *pipe(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const b of src) {
      await this.take(b.length)
      yield b
    }
  }
}
