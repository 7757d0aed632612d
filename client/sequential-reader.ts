import type { PlayerClient } from './player.js'

/**
 * Buffered sequential reading for playback: a producer keeps a ring buffer
 * filled ahead of the play position, a consumer takes bytes from it.
 *
 * Theory of operation. The ring holds the bytes [readPos, writePos) of the
 * title, at `offset % bufferBytes`. Only the producer advances writePos, only the
 * consumer advances readPos, and each wakes the other through `changed`. The
 * producer fetches at most the free space (once at least a quarter of the
 * ring or 64 KiB is free), so it never overwrites unread bytes. A fetch lands
 * in the ring itself (PlayerClient.readInto) and ends at the ring's end; one
 * that would be shorter there than the least worth a request goes through a
 * Buffer of its own and is copied in, wrapped (once per turn of the ring at
 * most). A seek bumps `generation`: a fetch that started before it is thrown
 * away when it lands, and the ring restarts empty at the new position. Such a
 * fetch may write into the ring after the seek; that is safe because there is
 * one producer, which waits for it before it fetches again, and until that
 * next fetch lands readPos === writePos, so the consumer reads nothing.
 * A consumer that needs only the count takes bytes with `skip`, which copies
 * nothing; with `discard` the reader keeps no ring at all and the client
 * counts the bytes as they arrive (the load tester's viewers: docs/loadtest.md).
 * The consumer's position is the play position: the client reports it
 * (PlayerClient.position) to the router.
 */
export interface SequentialOptions {
  /** ring size: how far ahead of the play position to buffer */
  bufferBytes: number
  /** largest single range request */
  fetchBytes: number
  startAt?: number
  /**
   * keep no bytes, only the positions (PlayerClient.discard): for a consumer
   * that takes them with `skip` alone, a load generator's player, whose
   * buffer would otherwise be memory to fault in and copy into for nothing
   */
  discard?: boolean
}

/** smallest fetch worth a request, unless the title ends sooner */
const MIN_FETCH = 64 * 1024

class Signal {
  private waiters: (() => void)[] = []
  wait(): Promise<void> {
    return new Promise(resolve => this.waiters.push(resolve))
  }
  notify(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}

export class SequentialReader {
  /** the bytes [readPos, writePos), at offset % bufferBytes; undefined with `discard` */
  private readonly ring: Buffer | undefined
  private readPos: number
  private writePos: number
  private generation = 0
  private closed = false
  private error: Error | undefined
  private readonly changed = new Signal()
  private running: Promise<void> | undefined

  constructor(private readonly client: PlayerClient, private readonly opts: SequentialOptions) {
    if (opts.fetchBytes > opts.bufferBytes) throw new RangeError('fetchBytes must not exceed bufferBytes')
    this.ring = opts.discard ? undefined : Buffer.allocUnsafe(opts.bufferBytes)
    this.readPos = this.writePos = opts.startAt ?? 0
    client.setPosition(this.readPos)
    this.running = this.produce()
  }

  get position(): number {
    return this.readPos
  }

  /** Bytes buffered ahead of the play position. */
  get buffered(): number {
    return this.writePos - this.readPos
  }

  /** The error that stopped fetching ahead (read() throws it too), until a seek restarts the producer. */
  get failure(): Error | undefined {
    return this.error
  }

  get atEnd(): boolean {
    return this.readPos >= this.client.size
  }

  private async produce(): Promise<void> {
    const cap = this.opts.bufferBytes
    // fetch what fits once at least this much is free: waiting for room for a whole fetchBytes would
    // deadlock a consumer that waits for more than the buffer holds before taking anything (fetchBytes
    // equal to bufferBytes meant: fetch only into an empty buffer)
    const least = Math.min(this.opts.fetchBytes, Math.max(1, Math.floor(cap / 4)), MIN_FETCH)
    while (!this.closed) {
      const size = this.client.size
      const free = cap - (this.writePos - this.readPos)
      const left = size - this.writePos
      const want = Math.min(this.opts.fetchBytes, left, free)
      if (want <= 0 || (want < least && want < left)) {
        await this.changed.wait()
        continue
      }
      const gen = this.generation
      const at = this.writePos
      const ring = this.ring
      const off = at % cap
      // straight into the ring, up to its end; a sliver at the end comes with the rest, through a Buffer, wrapped
      const wrapped = ring !== undefined && cap - off < Math.min(want, least)
      const n = ring === undefined || wrapped ? want : Math.min(want, cap - off)
      try {
        if (ring === undefined) await this.client.discard(at, n)
        else if (!wrapped) await this.client.readInto(at, ring.subarray(off, off + n))
        else {
          // copied in even after a seek, as a stale readInto would have landed: the check below throws it away
          const buf = await this.client.read(at, n)
          buf.copy(ring, off, 0, cap - off)
          buf.copy(ring, 0, cap - off)
        }
      } catch (err) {
        if (gen !== this.generation) continue
        this.error = err as Error
        this.changed.notify()
        this.running = undefined
        return
      }
      if (gen !== this.generation || this.closed) continue // a seek happened meanwhile
      this.writePos += n
      this.changed.notify()
    }
  }

  /**
   * Resolves with the next `n` bytes (fewer at the end of the title, an empty
   * Buffer at the end), waiting while the buffer is empty.
   */
  async read(n: number): Promise<Buffer> {
    const ring = this.ring
    if (ring === undefined) throw new TypeError('this reader keeps no bytes (discard): take them with skip')
    const avail = await this.ready(n)
    const out = Buffer.allocUnsafe(avail)
    const cap = this.opts.bufferBytes
    const off = this.readPos % cap
    const first = Math.min(avail, cap - off)
    ring.copy(out, 0, off, off + first)
    if (first < avail) ring.copy(out, first, 0, avail - first)
    this.take(avail)
    return out
  }

  /**
   * As `read`, for a consumer that needs the count, not the bytes (the load
   * tester's viewers): the play position moves by what is buffered, up to
   * `n`, with no copy. Resolves with the bytes passed (0 at the end).
   */
  async skip(n: number): Promise<number> {
    const avail = await this.ready(n)
    this.take(avail)
    return avail
  }

  /** Waits until something is buffered or the title has ended; then what may be taken, up to `n`. */
  private async ready(n: number): Promise<number> {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`expected a count of bytes, a whole number of 1 or more; got ${n}`)
    for (;;) {
      if (this.error) throw this.error
      if (this.closed) throw new Error('reader closed')
      const avail = Math.min(n, this.writePos - this.readPos)
      if (avail > 0 || this.readPos >= this.client.size) return Math.max(0, avail)
      await this.changed.wait()
    }
  }

  private take(n: number): void {
    this.readPos += n
    this.client.position = this.readPos
    this.changed.notify()
  }

  /** Moves the play position; the buffer restarts there. */
  seek(pos: number): void {
    if (pos < 0 || pos > this.client.size) throw new RangeError(`seek to ${pos} is outside 0-${this.client.size}`)
    this.generation++
    this.readPos = this.writePos = pos
    this.client.position = pos
    this.error = undefined
    this.running ??= this.produce() // the producer stops after an error; a seek starts it again
    this.changed.notify()
  }

  async close(): Promise<void> {
    this.closed = true
    this.changed.notify()
    await this.running
  }
}
