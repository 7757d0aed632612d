import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { CdnError, ClientClosedError, UpstreamCorruptError, UpstreamCutError } from '../../lib/errors.js'
import { refName, type ChunkRef } from '../title.js'
import { BlockGate } from './blocks.js'
import { Segments, type Segment } from './segments.js'
import { dropChunk, holdChunk } from '../tiers/chunk-arena.js'
import { retryReason, translateUpstreamError, type RetryReason } from './upstream.js'
import type { BodyDest } from '../../lib/http/shard-read.js'

/**
 * One chunk being fetched from upstream into one Buffer, read by any number of
 * players while it fills.
 *
 * Theory of operation. The Fill owns `buf` (allocated once, the chunk's size)
 * and the segments (segments.ts) that requests bring: bytes [from, pos) of a
 * segment have arrived, [from, ok) are released to readers. Readers own only
 * their position: they write `buf.subarray(pos, available)` and wait on the
 * shared `progress()` promise for more, so a slow reader falls behind without
 * holding up the fill or anyone else, and memory stays one Buffer however many
 * read.
 *
 * Fill order. The first segment starts at the first reader's position (0 for
 * playback from the start and for readahead). A reader that lands in a gap, or
 * more than `splitBytes` ahead of the segment bringing its byte, starts its own
 * ranged request there (splitting that segment: the earlier one stops where the
 * new one begins), so a seek deep into an uncached chunk starts after one
 * upstream round trip instead of after the bytes before it. When the running
 * segments end, the gaps left (typically [0, seek point)) are fetched one at a
 * time. Each byte is fetched once (but for a resumed block); at most
 * `maxSegments` requests run at once.
 *
 * Integrity. When bytes are released is blocks.ts's rule: with the chunk's
 * block list (fetched once per fill, alongside its first request), each 64 KiB
 * block once it passes its CRC32C, wherever it is, so a short range at a
 * chunk's end is served after one round trip; without one, as they arrive, the
 * chunk's last byte only once the whole chunk verifies. Without a block list
 * the whole-chunk SHA-256 runs over the contiguous released prefix as it
 * grows, and `done` resolves only with a chunk whose digest matches. With one,
 * a chunk is verified once every block passed the list whose SHA-256 the
 * manifest holds: the digest over the whole chunk would catch only a CRC32C
 * collision on a block hurt after its shard's own check, at about 1 s of CPU
 * per GB filled (a third of a fill's cost), so it runs only with
 * `verifyWholeChunks` (edge.fill.verifyWholeChunks), as the router's relay
 * does (router.verifyWholeChunks). The disk tier keeps that list for the chunk
 * (`crcs`), so every disk read checks against the manifest's CRCs, not ones
 * computed from the bytes. `done` is the only way bytes reach a cache tier.
 * Released bytes cannot be recalled: on a bad block or digest every reader
 * still reading gets the error and is cut. A block the source already checked
 * against the same list (`ChunkBody.verified`) is not checked again.
 *
 * Where bytes land. Each request is offered the fill's buffer (`BodyDest`):
 * a source that can read straight into it (a shard's data, lib/http/shard-read.ts)
 * writes bytes [pos, seg.to) in place and hands on views of them, which
 * `pump` takes without a copy; other sources hand on pieces that `pump`
 * copies in. Such a source names the memory of a read before the read
 * (`claim`), so a split never moves a segment's end below what its running
 * request has claimed: the bytes of two requests never meet.
 *
 * Failure and resumption. A segment's request that breaks off (a reset, a
 * short body, a 502/503/504 of the router's, an idle timeout: `retryReason` in
 * upstream.ts) is asked again from the end of the last released block (without
 * a block list, from the last byte that arrived), after `retryBackoffMs`
 * doubled each time, and never past the coalescer's deadline; the segments of
 * a split fill resume each on its own, and readers only wait longer. The
 * budget is `retries` failures in a row without progress: a request that
 * moved the resume point on by at least one 64 KiB block before it broke off
 * starts the count (and the backoff) again, so a long fill from a flaky
 * upstream that gets somewhere between cuts goes on as long as the deadline
 * allows, while one that gets nowhere fails after `retries`. Any other error
 * (a 404, another version, a bad block or digest of bytes that arrived whole),
 * a segment out of retries, or the deadline is final: it aborts every request,
 * rejects `done`, and reaches every reader as that CdnError (502/504). The
 * fill never sees a player's AbortSignal: players come and go; the coalescer
 * owns the deadline.
 *
 * Memory. `buf` may be a reused slot (edge/tiers/chunk-arena.ts), so whoever
 * reads it holds it: `hold` and `drop`. The fill's own hold is dropped by the
 * coalescer once it has committed the chunk (or the fill failed); after it
 * settles a fill never touches `buf` again. A reader holds from the
 * synchronous `join` that found the fill, which may come before `start`
 * allocates `buf`: those holds are counted and taken on it at `start`.
 */
export interface FillOptions {
  splitBytes: number
  maxSegments: number
  /** times in a row one segment's request is resumed after a cut, a 502/503/504 or a timeout without a block of progress before the fill fails */
  retries: number
  /** the wait before a segment's first resumption; doubled for each next one */
  retryBackoffMs: number
  /** allocates a chunk's buffer held once, the fill's own hold (edge/tiers/chunk-arena.ts: a reused slot; shared memory when serve threads read the RAM tier); default Buffer.allocUnsafeSlow */
  alloc?: (size: number) => Buffer
  /**
   * also hash a chunk whose every block passed the block list the manifest
   * anchors, and cache it only if its SHA-256 matches (edge.fill.verifyWholeChunks,
   * off by default: see "Integrity" above). Unset: on. A chunk without a block
   * list is always hashed.
   */
  verifyWholeChunks?: boolean
}

/**
 * `held`: set (and read at each piece) while the bytes come from a sibling
 * at the site that held the chunk (edge/site/peer-source.ts): the site's hit,
 * not the origin's bytes.
 */
export type ChunkFetch = (ref: ChunkRef, from: number, to: number, signal: AbortSignal, dest?: BodyDest) => Promise<ChunkBody>

/**
 * A request's body. `held`: see above. `verified`: the chunk offset up to
 * which the bytes it yielded were checked block by block against the block
 * list the manifest anchors (the direct source checks them to know where to
 * fail over, lib/integrity/block-run.ts): the gate does not check those again.
 * `dest`: the fill's buffer, for a source that reads bytes straight into it
 * (lib/http/shard-read.ts); such a source yields views of `dest.buf` at
 * their own offsets, which the fill takes in place instead of copying.
 * Sources that ignore it yield pieces of their own.
 */
export type ChunkBody = AsyncIterable<Buffer> & { destroy(): void; held?: boolean; readonly verified?: number }
/** The chunk's block list, already checked against `ref.blocks` */
export type CrcsFetch = (ref: ChunkRef, signal: AbortSignal) => Promise<Buffer>

export interface FillUpstream {
  chunk: ChunkFetch
  /** unset: fills release bytes as they arrive, as for titles without block lists */
  crcs?: CrcsFetch | undefined
}

export interface FillEvents {
  /** body bytes received (the overshoot of a cut request included) */
  bytes(n: number): void
  /** a segment's request failed with `err` and is asked again from byte `at` */
  retry?(reason: RetryReason, err: CdnError, at: number): void
  /** the block list could not be had: the fill goes on with the whole-chunk rule */
  unlisted?(err: CdnError): void
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
  /** performance.now() by which the coalescer fails the fill: no resumption waits past it */
  deadline = Infinity
  error: CdnError | null = null
  verified = false
  private readonly segs: Segments
  private readonly ac = new AbortController()
  private readonly hasher = createHash('sha256')
  private readonly gate: BlockGate
  /** the end of the contiguous released prefix (hashed, when the chunk is hashed) */
  private hashed = 0
  private active = 0
  /** bytes received from a sibling that held the chunk, and from anywhere else (the origin, or an owner filling it) */
  private heldBytes = 0
  private otherBytes = 0
  private wake: Wake | null = null
  /** false until the coalescer gives this fill a slot: no upstream request before */
  private started = false
  /** holds taken before `buf` existed, the fill's own included: taken on it at `start` */
  private holds = 1
  private settle!: { resolve: (b: Buffer) => void; reject: (e: Error) => void }

  constructor(
    readonly ref: ChunkRef,
    private readonly upstream: FillUpstream,
    private readonly opts: FillOptions,
    private readonly events: FillEvents,
  ) {
    this.gate = new BlockGate(ref, upstream.crcs !== undefined)
    this.segs = new Segments(ref.size)
    this.done = new Promise<Buffer>((resolve, reject) => { this.settle = { resolve, reject } })
    this.done.catch(noop)
  }

  /** Every byte received so far came from a sibling at the site that held the chunk: what players read from it is the site's hit. */
  get fromSibling(): boolean {
    return this.heldBytes > 0 && this.otherBytes === 0
  }

  get signal(): AbortSignal {
    return this.ac.signal
  }

  /** Allocates the buffer, asks for the block list, and starts fetching at `from` (the first reader's position). */
  start(from: number): void {
    if (this.started || this.error) return
    this.started = true
    // the allocation holds once (the fill's own); the holds of readers that joined before are added
    this.buf = this.opts.alloc?.(this.ref.size) ?? Buffer.allocUnsafeSlow(this.ref.size)
    for (let i = 1; i < this.holds; i++) holdChunk(this.buf)
    this.holds = 0
    if (this.gate.mode === 'pending') void this.list()
    this.launch(this.gate.align(Math.min(Math.max(from, 0), this.ref.size - 1)), this.ref.size)
  }

  /**
   * The exclusive end of the bytes readable from `pos` on, or `pos` if byte
   * `pos` is not. Without a block list the chunk's last byte is readable only
   * once the chunk is verified, so a response that covers the end of a chunk
   * cannot complete on bytes that then fail the digest: it is cut instead.
   */
  availableFrom(pos: number): number {
    const s = this.segs.at(pos)
    if (s === undefined || s.ok <= pos) return pos
    return s.ok === this.ref.size && !this.verified && this.gate.mode !== 'blocks' ? Math.max(pos, s.ok - 1) : s.ok
  }

  /**
   * Resolves once byte `pos` is readable; starts or splits a segment if none
   * will bring it soon. `gone`: the reader left (its player's connection
   * closed): it fails with a ClientClosedError at the next turn instead of
   * asking for segments at an offset no one wants any more.
   */
  async waitFor(pos: number, gone?: () => boolean): Promise<void> {
    for (;;) {
      if (this.error) throw this.error
      if (this.availableFrom(pos) > pos) return
      if (gone?.() === true) throw new ClientClosedError()
      this.ensureComing(pos)
      await this.progress()
    }
  }

  /** One more holder of the chunk's memory (a reader, or the fill's own); pair with `drop`. */
  hold(): void {
    if (this.buf === undefined) this.holds++
    else holdChunk(this.buf)
  }

  /** A holder is done with `buf` for good. */
  drop(): void {
    if (this.buf === undefined) this.holds--
    else dropChunk(this.buf)
  }

  /**
   * The chunk's block list once the fill knows whether it has one: undefined
   * without (the whole-chunk rule) or when the fill failed. A peer fill's
   * owner answers it (edge/site/peer-serve.ts) without asking upstream again.
   */
  async blockList(): Promise<Buffer | undefined> {
    try {
      while (this.gate.mode === 'pending' && !this.error) await this.progress()
    } catch {
      return undefined
    }
    return this.error ? undefined : this.gate.list
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

  private ensureComing(pos: number): void {
    if (!this.started || this.active >= this.opts.maxSegments) return
    const s = this.segs.at(pos)
    if (s === undefined) {
      this.launch(this.gate.align(pos), this.segs.gapEnd(pos))
    } else if (!s.done && pos - s.pos > this.opts.splitBytes) {
      // the reader is far ahead of the segment bringing its byte: it gets its own request from there,
      // but not below what the running request may already be reading into (its claim)
      const at = Math.max(this.gate.align(pos), this.gate.alignUp(s.claimed))
      if (at <= s.pos || at >= s.to) return
      const to = s.to
      s.to = at
      this.launch(at, to)
    }
  }

  private launch(from: number, to: number): void {
    this.active++
    void this.run(this.segs.add(from, to))
  }

  /** Brings a segment's bytes, resuming its request after the failures worth it. */
  private async run(seg: Segment): Promise<void> {
    const what = `chunk ${refName(this.ref)}`
    // failures in a row without progress, and where the request that failed last started
    let failures = 0
    let from = seg.pos
    for (;;) {
      try {
        await this.pump(seg, what)
        break
      } catch (err) {
        if (this.error) break
        const e = translateUpstreamError(err, what, this.ac.signal)
        const reason = retryReason(e)
        // it broke off after the last byte this segment wants: nothing to ask again
        if (reason !== undefined && seg.pos >= seg.to) break
        // from the end of the last verified block: the bytes after it are asked for again
        const at = Math.max(seg.ok, this.gate.resumeAt(seg.pos))
        if (at - from >= BLOCK_SIZE) failures = 0
        const wait = this.opts.retryBackoffMs * 2 ** failures
        if (reason === undefined || failures >= this.opts.retries || performance.now() + wait >= this.deadline) {
          this.fail(e)
          break
        }
        failures++
        seg.pos = from = at
        seg.end = seg.to
        this.events.retry?.(reason, e, seg.pos)
        try {
          await sleep(wait, undefined, { signal: this.ac.signal })
        } catch {
          break // the fill ended meanwhile
        }
      }
    }
    this.active--
    if (this.error) return
    seg.done = true
    this.next(seg.to)
  }

  /** One upstream request for [pos, end) of a segment, copied into `buf` and released as it verifies. */
  private async pump(seg: Segment, what: string): Promise<void> {
    const dest: BodyDest = { buf: this.buf, end: () => seg.to, claim: upTo => { if (upTo > seg.claimed) seg.claimed = upTo } }
    const start = seg.pos
    const body = await this.upstream.chunk(this.ref, start, seg.end, this.ac.signal, dest)
    for await (const piece of body) {
      if (this.error) break
      const n = Math.min(piece.length, seg.to - seg.pos)
      // a source that read straight into the buffer hands on views of it where they belong: nothing to copy
      if (piece.buffer !== this.buf.buffer || piece.byteOffset !== this.buf.byteOffset + seg.pos) piece.copy(this.buf, seg.pos, 0, n)
      seg.pos += n
      if (body.held === true) this.heldBytes += n
      else this.otherBytes += n
      this.events.bytes(piece.length)
      seg.ok = this.gate.release(this.buf, seg.ok, seg.pos, body.verified, start)
      this.advance()
      // split: the rest belongs to a later segment; leaving the loop destroys this request
      if (seg.pos >= seg.to && seg.to < seg.end) break
    }
    if (!this.error && seg.pos < seg.to) throw new UpstreamCutError(`upstream ended ${what} at byte ${seg.pos}, expected ${seg.to}`, 'cut')
  }

  /** Fetches the block list; without one, the fill goes on with the whole-chunk rule. */
  private async list(): Promise<void> {
    try {
      this.gate.listed(await this.upstream.crcs!(this.ref, this.ac.signal))
    } catch (err) {
      if (this.error) return
      this.gate.unlisted()
      this.events.unlisted?.(translateUpstreamError(err, `the block list of chunk ${refName(this.ref)}`))
    }
    if (this.error) return
    try {
      for (const s of this.segs) s.ok = this.gate.release(this.buf, s.ok, s.pos)
    } catch (err) {
      return this.fail(err as CdnError)
    }
    this.advance()
    // every segment ended while the list was on its way: verify now
    if (this.active === 0) this.next(0)
  }

  /** The block list every released byte passed, once the fill is in 'blocks' mode: what the disk tier keeps for the chunk. */
  get crcs(): Buffer | undefined {
    return this.gate.mode === 'blocks' ? this.gate.list : undefined
  }

  /** Is the whole-chunk SHA-256 taken? Always without a block list; with one, as edge.fill.verifyWholeChunks says. */
  private get hashing(): boolean {
    return this.gate.mode === 'whole' || this.opts.verifyWholeChunks !== false
  }

  /** Hashes the contiguous released prefix (when the chunk is hashed), then wakes readers. */
  private advance(): void {
    const hashing = this.hashing
    for (;;) {
      const s = this.segs.at(this.hashed)
      if (s === undefined || s.ok <= this.hashed) break
      if (hashing) this.hasher.update(this.buf.subarray(this.hashed, s.ok))
      this.hashed = s.ok
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
    const gap = this.segs.nextGap(after)
    if (gap !== undefined) return this.launch(gap, this.segs.gapEnd(gap))
    // every byte is here, but none is released until the block list arrives: list() comes back here
    if (this.gate.mode === 'pending') return
    this.advance()
    // every block passed the manifest's list: that is the check unless the digest is asked for too
    const sha = this.hashing ? this.hasher.digest('hex') : this.ref.sha256
    if (this.hashed !== this.ref.size || sha !== this.ref.sha256) {
      return this.fail(new UpstreamCorruptError(`chunk ${refName(this.ref)}`,
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
