import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A viewer's link: a token bucket of `bytesPerSecond`, through which every
 * byte the viewer reads passes (playlists, init segments, video and audio),
 * so its reads never exceed the link (`loadtest players` gives each ABR viewer
 * one, drawn from the scenario's `links`).
 *
 * Theory of operation. Tokens are bytes; they accrue at the rate up to
 * `burstBytes`. `take(n)` spends n at once and, if that leaves the bucket in
 * debt, waits until the debt is repaid. So over any t seconds at most
 * burst + rate·t bytes pass, and a reader that always wants more gets exactly
 * the rate: a timer that fires late (a busy event loop) is no loss, since the
 * tokens are counted from the clock, not from the timer. Concurrent takes
 * queue in call order, each waiting for the debt every earlier one left.
 * The reader applies it after each piece of a response body arrives and before
 * it asks for the next: a paused body stream stops the socket, so the server
 * sees the link's rate too, a few socket buffers later.
 *
 * The burst is small (50 ms of the link, at least 16 KiB), so a throughput
 * sample of one small segment is not inflated by it; large enough that a
 * timer late by up to 50 ms loses no capacity.
 */
export class TokenBucket {
  burstBytes: number
  private tokens: number
  private last: number

  constructor(public bytesPerSecond: number, burstBytes?: number, private readonly now: () => number = () => performance.now()) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`expected a link rate above 0 bytes/s, got ${bytesPerSecond}`)
    this.burstBytes = burstBytes ?? TokenBucket.burstFor(bytesPerSecond)
    if (!(this.burstBytes > 0)) throw new RangeError(`expected a burst above 0 bytes, got ${burstBytes}`)
    this.tokens = this.burstBytes
    this.last = now()
  }

  /** A link of `bitsPerSecond`, played `speed` times faster than real time (the reads scale with the play rate). */
  static ofLink(bitsPerSecond: number, speed = 1): TokenBucket {
    return new TokenBucket((bitsPerSecond / 8) * speed)
  }

  private static burstFor(bytesPerSecond: number): number {
    return Math.max(16 * 1024, Math.ceil(bytesPerSecond * 0.05))
  }

  /** The link changes (a test's falling link): tokens earned so far were earned at the old rate; the burst follows the rate. */
  setRate(bytesPerSecond: number): void {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError(`expected a link rate above 0 bytes/s, got ${bytesPerSecond}`)
    this.spend(0)
    this.bytesPerSecond = bytesPerSecond
    this.burstBytes = TokenBucket.burstFor(bytesPerSecond)
    this.tokens = Math.min(this.tokens, this.burstBytes)
  }

  /** Milliseconds the caller must wait after spending `n` bytes now (0 if the bucket covers them). */
  spend(n: number): number {
    const t = this.now()
    this.tokens = Math.min(this.burstBytes, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond)
    this.last = t
    this.tokens -= n
    return this.tokens >= 0 ? 0 : (-this.tokens / this.bytesPerSecond) * 1000
  }

  /** Spends `n` bytes and resolves once the link has carried them; rejects with an AbortError when `signal` aborts. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const wait = this.spend(n)
    if (wait > 0) await sleep(wait, undefined, signal ? { signal } : undefined)
  }
}
