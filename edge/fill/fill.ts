import { createHash } from 'node:crypto'
import { CdnError, UpstreamCorruptError, UpstreamError } from '../../lib/errors.js'
import { chunkName } from '../../lib/ids.js'
import type { ChunkRef } from '../title.js'
import { translateUpstreamError } from './upstream.js'

/**
 * One chunk being fetched from upstream into one Buffer, read by any number of
 * players while it fills.
 *
 * Theory of operation. The Fill owns `buf` (allocated once, the chunk's size)
 * and a sorted list of disjoint segments [from, to), each brought by one
 * upstream request; bytes [from, pos) of a segment have arrived. Readers own
 * only their position: they write `buf.subarray(pos, available)` and wait on
 * the shared `progress()` promise for more, so a slow reader falls behind
 * without holding up the fill or anyone else, and memory stays one Buffer
 * however many read.
 *
 * Fill order. The first segment starts at the first reader's position (0 for
 * playback from the start and for readahead). A reader that lands in a gap, or
 * more than `splitBytes` ahead of the segment bringing its byte, starts its own
 * ranged request there (splitting that segment: the earlier one stops where the
 * new one begins), so a seek deep into an uncached chunk starts after one
 * upstream round trip instead of after the bytes before it. When the running
 * segments end, the gaps left (typically [0, seek point)) are fetched one at a
 * time. Each byte is fetched once; at most `maxSegments` requests run at once.
 *
 * Integrity. The whole-chunk SHA-256 is computed over the contiguous prefix as
 * it grows, so an in-order fill is verified the moment its last byte lands.
 * `done` resolves only with a verified Buffer: that is the only way bytes reach
 * a cache tier. Bytes handed to players before verification cannot be
 * recalled; what we guarantee is (1) they are exactly the bytes the upstream
 * sent, which the upstream itself verified (origin shards check each 64 KiB
 * block's CRC32C before sending, the router the shard's digests); (2) on a
 * digest mismatch every reader still reading this fill gets the error and its
 * connection is cut; (3) the chunk's last byte is released only after the
 * digest verifies, so any response that reaches the end of a chunk (a whole
 * chunk, `bytes=N-`, anything spanning chunks) is cut rather than completed if
 * the chunk fails; only a range that ends inside an unverified chunk can
 * complete on (1) alone; and (4) nothing unverified is ever cached or served
 * from a cache. The price of (3) is small: the last byte arrives last anyway,
 * except after a deep seek, where a reader crossing the chunk's end waits for
 * the gap before the seek point to be fetched too.
 *
 * Failure. The first error (upstream status, reset, idle or overall timeout,
 * digest) is final: it aborts every segment's request, rejects `done`, and
 * reaches every reader as that CdnError (502/504). The fill never sees a
 * player's AbortSignal: players come and go; the coalescer owns the deadline.
 */
export interface FillOptions {
  splitBytes: number
  maxSegments: number
  /** allocates a chunk's buffer (shared memory when serve threads read the RAM tier); default Buffer.allocUnsafeSlow */
  alloc?: (size: number) => Buffer
}

export type ChunkFetch = (ref: ChunkRef, from: number, to: number, signal: AbortSignal) => Promise<AsyncIterable<Buffer> & { destroy(): void }>

interface Segment {
  from: number
  /** exclusive end still wanted; lowered when a later segment takes over the rest */
  to: number
  /** exclusive end requested upstream */
  end: number
  pos: number
  done: boolean
}

interface Wake {
  promise: Promise<void>
  resolve: () => void
  reject: (err: Error) => void
}

const noop = () => {}

export class Fill {
  /** allocated by `start`, so a fill waiting for a slot holds no memory */
  buf!: Buffer
  readonly done: Promise<Buffer>
  readonly createdAt = performance.now()
  error: CdnError | null = null
  verified = false
  private readonly segs: Segment[] = []
  private readonly ac = new AbortController()
  private readonly hasher = createHash('sha256')
  private hashed = 0
  private active = 0
  private wake: Wake | null = null
  /** false until the coalescer gives this fill a slot: no upstream request before */
  private started = false
  private settle!: { resolve: (b: Buffer) => void; reject: (e: Error) => void }

  constructor(
    readonly ref: ChunkRef,
    private readonly fetch: ChunkFetch,
    private readonly opts: FillOptions,
    private readonly onBytes: (n: number) => void,
  ) {
    this.done = new Promise<Buffer>((resolve, reject) => { this.settle = { resolve, reject } })
    this.done.catch(noop)
  }

  get signal(): AbortSignal {
    return this.ac.signal
  }

  /** Allocates the buffer and starts fetching at `from` (the first reader's position). */
  start(from: number): void {
    if (this.started || this.error) return
    this.started = true
    this.buf = this.opts.alloc?.(this.ref.size) ?? Buffer.allocUnsafeSlow(this.ref.size)
    this.launch(Math.min(Math.max(from, 0), this.ref.size - 1), this.ref.size)
  }

  /**
   * The exclusive end of the bytes readable from `pos` on, or `pos` if byte
   * `pos` is not. The chunk's last byte is readable only once the chunk is
   * verified, so a response that covers the end of a chunk cannot complete on
   * bytes that then fail the digest: it is cut instead.
   */
  availableFrom(pos: number): number {
    const s = this.segAt(pos)
    if (s === undefined || s.pos <= pos) return pos
    return s.pos === this.ref.size && !this.verified ? Math.max(pos, s.pos - 1) : s.pos
  }

  /** Resolves once byte `pos` has arrived; starts or splits a segment if none will bring it soon. */
  async waitFor(pos: number): Promise<void> {
    for (;;) {
      if (this.error) throw this.error
      if (this.availableFrom(pos) > pos) return
      this.ensureComing(pos)
      await this.progress()
    }
  }

  /** Ends the fill with `err` for everyone; a no-op once it has ended. */
  fail(err: CdnError): void {
    if (this.error || this.verified) return
    this.error = err
    this.ac.abort(err)
    this.settle.reject(err)
    const w = this.wake
    this.wake = null
    w?.reject(err)
  }

  private segAt(pos: number): Segment | undefined {
    for (const s of this.segs) if (s.from <= pos && pos < s.to) return s
    return undefined
  }

  private ensureComing(pos: number): void {
    if (!this.started || this.active >= this.opts.maxSegments) return
    const s = this.segAt(pos)
    if (s === undefined) {
      this.launch(pos, this.gapEnd(pos))
    } else if (!s.done && pos - s.pos > this.opts.splitBytes) {
      // the reader is far ahead of the segment bringing its byte: it gets its own request from there
      const to = s.to
      s.to = pos
      this.launch(pos, to)
    }
  }

  /** The end of the gap that contains `pos`: the start of the next segment, or the chunk's end. */
  private gapEnd(pos: number): number {
    let end = this.ref.size
    for (const s of this.segs) if (s.from > pos && s.from < end) end = s.from
    return end
  }

  private launch(from: number, to: number): void {
    const seg: Segment = { from, to, end: to, pos: from, done: false }
    let i = 0
    while (i < this.segs.length && this.segs[i]!.from < from) i++
    this.segs.splice(i, 0, seg)
    this.active++
    void this.run(seg)
  }

  private async run(seg: Segment): Promise<void> {
    const what = `chunk ${chunkName(this.ref.contentId, this.ref.index)}`
    try {
      const body = await this.fetch(this.ref, seg.from, seg.end, this.ac.signal)
      for await (const piece of body) {
        if (this.error) break
        const n = Math.min(piece.length, seg.to - seg.pos)
        piece.copy(this.buf, seg.pos, 0, n)
        seg.pos += n
        this.onBytes(piece.length)
        this.advance()
        // split: the rest belongs to a later segment; leaving the loop destroys this request
        if (seg.pos >= seg.to && seg.to < seg.end) break
      }
      if (!this.error && seg.pos < seg.to) throw new UpstreamError(`upstream ended ${what} at byte ${seg.pos}, expected ${seg.to}`)
    } catch (err) {
      this.fail(translateUpstreamError(err, what, this.ac.signal))
    } finally {
      this.active--
    }
    if (this.error) return
    seg.done = true
    this.next(seg.to)
  }

  /** Hashes the contiguous prefix that has arrived, then wakes readers. */
  private advance(): void {
    for (;;) {
      const s = this.segAt(this.hashed)
      if (s === undefined || s.pos <= this.hashed) break
      this.hasher.update(this.buf.subarray(this.hashed, s.pos))
      this.hashed = s.pos
    }
    const w = this.wake
    if (w) {
      this.wake = null
      w.resolve()
    }
  }

  /** After a segment ends: fetch the next gap at or after `after` (wrapping around), or verify when there is none. */
  private next(after: number): void {
    if (this.active > 0) return
    const gaps: number[] = []
    let pos = 0
    for (const s of this.segs) {
      if (s.from > pos) gaps.push(pos)
      pos = s.to
    }
    if (pos < this.ref.size) gaps.push(pos)
    const gap = gaps.find(g => g >= after) ?? gaps[0]
    if (gap !== undefined) return this.launch(gap, this.gapEnd(gap))
    this.advance()
    const sha = this.hasher.digest('hex')
    if (this.hashed !== this.ref.size || sha !== this.ref.sha256) {
      return this.fail(new UpstreamCorruptError(`chunk ${chunkName(this.ref.contentId, this.ref.index)}`,
        `sha256 ${sha} over ${this.hashed} bytes, manifest says ${this.ref.sha256} over ${this.ref.size}`))
    }
    this.verified = true
    this.settle.resolve(this.buf)
    this.advance() // wakes readers waiting for the last byte
  }

  private progress(): Promise<void> {
    if (this.wake === null) {
      let resolve!: () => void
      let reject!: (err: Error) => void
      const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
      promise.catch(noop)
      this.wake = { promise, resolve, reject }
    }
    return this.wake.promise
  }
}
