import { UpstreamCutError, UpstreamTimeoutError } from '../../lib/errors.js'
import type { ShardBody } from '../../lib/http/shard-read.js'
import { Cancel } from '../../lib/cancel.js'
import { shardFailure, type ShardClient } from '../cluster/shard-client.js'
import { Line } from '../../lib/line.js'

/**
 * A shard's chunk bytes for the relay, read window by window into reused
 * memory, with no copy and no allocation per piece (issue 16).
 *
 * Why: through an HTTP client, every socket read of a shard's answer arrives
 * as a fresh 64 KiB Buffer, copied into the parser's memory, wrapped and
 * passed through a stream. On the router's relay that was most of its CPU:
 * 1.6-1.9 CPU-s per GB relayed, the router's one thread saturated at a
 * quarter of a direct shard read. Read with the socket's `onread` straight
 * into memory the router keeps (lib/http/shard-read.ts), the same relay took
 * 0.5-0.8 (docs/benchmarks.md, row `router`).
 *
 * Theory of operation. [start, end] of a chunk (block-aligned, as the relay
 * asks: reader.ts) is read as consecutive windows of at most one slab, each
 * one GET with its own Range on the shard's kept connections, each landing at
 * the start of a slab taken from a pool. A read that fits in 2 MiB (a
 * player's range) takes a 2 MiB slab, one that fits in 8 MiB (a segment) an
 * 8 MiB one, and a longer one (a whole chunk, a player's open-ended range, a
 * fill) 16 MiB slabs while the relay has memory to spare, 8 MiB ones when it
 * does not (RelaySlabs.for): each window costs the shard a request and the
 * router a request head, parse and turn. On the router row 8 MiB windows
 * cost the shards 0.34-0.39 CPU-s per GB against 0.42-0.57 with 2 MiB ones
 * (whole chunks, three runs each); a whole title read with one GET went from
 * 1,312 to 1,494 MB/s in median with 16 MiB windows against 8 (18 rounds
 * each, alternating; docs/benchmarks.md, "Relay windows of 16 MiB, again").
 * The iterator yields views of the slab as bytes land; the reader checks their
 * blocks and writes them to the client. A window ends on a block boundary
 * (or the chunk's end), so a block never spans two slabs.
 *
 * A slab goes back to the pool only once every view of it the reader was
 * given has been written out: the reader says so with `written` (the
 * promise of its latest socket write's callback, or of the client's
 * connection closing; writes complete in order).
 * The next window is asked for as soon as one has landed whole and the
 * window before it is written out (for the first one ahead: what the
 * reader had written to the response before this read, the chunk before it
 * or a failover's earlier read), while its views may still be on their way
 * to the client, so a response holds two slabs (32 MiB for a long read; a
 * third for a moment where a chunk's or a failover's first window is asked
 * for while the last views before it are on their way), and the shard starts
 * on the next window while the reader finishes this one. A window that
 * failed is not followed by another. A write made after the client's socket
 * died gets no callback; its slab comes back when the response closes.
 *
 * A window takes a turn on the shard's connections (ShardClient.readSlot)
 * and gives it up once its bytes have landed, so a read whose client is slow
 * holds slabs (bounded by router.relayMemoryBytes), not a connection.
 *
 * Failure: a refusal, a timeout or a cut fails the iteration (or `open`, for
 * the first window: before the client's headers); the reader then asks the
 * next owner from the first byte it has not sent. A window that fails before
 * its body (no slab memory in time, no turn, a refusal) gives its slab and
 * its turn back at once. `destroy` drops the window in flight and the one
 * asked for ahead (their connections close: their bytes would land in slabs
 * the read no longer owns; the one ahead's slab comes back at once, no view
 * of it having been given) and the read's count on its shard.
 */

const MiB = 1024 * 1024
/** why a read's window in flight is dropped: one instance, so a read's end makes no exception and no stack */
const LEFT = new UpstreamCutError('the relay left the read', 'cut')

/** Where a read takes its slabs and gives them back. */
export interface Slabs {
  readonly bytes: number
  /** a slab, at once or in turn; a wait `cancel` stops leaves the line at once */
  take(cancel?: Cancel): Buffer | Promise<Buffer>
  give(b: Buffer): void
}

/** Slabs of `bytes`, written in once when made so a read never lands in memory the kernel has yet to map. */
export class SlabPool implements Slabs {
  private readonly idle: Buffer[] = []
  /** slabs made since start: the most ever held at once, give or take what the GC took back */
  made = 0
  /** slabs taken and not given back: reads in flight, and bytes of theirs still on their way to a client */
  lent = 0

  /** `keep`: idle slabs kept for the next reads (the rest is left to the GC) */
  constructor(readonly bytes: number, private readonly keep: number) {}

  take(): Buffer {
    this.lent++
    const b = this.idle.pop()
    if (b) return b
    this.made++
    return Buffer.allocUnsafeSlow(this.bytes).fill(0)
  }

  give(b: Buffer): void {
    this.lent--
    if (this.idle.length < this.keep) this.idle.push(b)
  }

  get idleCount(): number {
    return this.idle.length
  }
}

/**
 * The relay's slabs, by the length of the read: 2 MiB ones for reads that fit
 * (16 kept idle), 8 MiB ones for reads that fit in those and for longer reads
 * when memory is short (8 kept idle), and 16 MiB ones for longer reads while
 * it is not (2 kept idle: one long read's); 128 MiB idle at most. All lent
 * at once stay within `budget` (router.relayMemoryBytes): past it, a read
 * waits for its next slab in turn, and one that waits `waitMs`
 * (router.upstream.headersTimeoutMs) fails over as a timeout. A slab larger
 * than the budget is still lent when nothing else is, so a small budget
 * slows reads, never stops them.
 */
export class RelaySlabs {
  /** smallest first: a read takes the first that fits it, else the last */
  readonly pools = [new SlabPool(2 * MiB, 16), new SlabPool(8 * MiB, 8), new SlabPool(16 * MiB, 2)] as const
  private readonly lenders: readonly [Slabs, Slabs, Slabs]
  /** reads waiting for a slab, each served one taken for it (its need: the slab's size); one that leaves late may let a smaller need behind it go */
  private readonly line = new Line<Buffer>(() => this.serveLine())

  constructor(private readonly budget: number, private readonly waitMs: number) {
    const [small, medium, large] = this.pools
    this.lenders = [this.lender(small), this.lender(medium), this.lender(large)]
  }

  /** Bytes of slabs lent to reads now, and kept idle (reelcdn_router_relay_slab_bytes). */
  bytes(): { inUse: number; idle: number } {
    let idle = 0
    for (const p of this.pools) idle += p.idleCount * p.bytes
    return { inUse: this.lent(), idle }
  }

  /**
   * Where a read of `bytes` takes its slabs from, for its life. A long read
   * takes 16 MiB ones while the relay has memory to spare (two more fit in a
   * quarter of the budget with what is lent when it starts: never on a
   * budget under 128 MiB), 8 MiB ones otherwise: with eight whole chunks read
   * at once, 16 MiB windows cost the router more CPU per GB than 8 MiB ones
   * and filled the default budget (docs/benchmarks.md, "Relay windows of
   * 16 MiB, again").
   */
  for(bytes: number): Slabs {
    const [small, medium, large] = this.lenders
    if (bytes <= small.bytes) return small
    if (bytes <= medium.bytes) return medium
    return this.lent() + 2 * large.bytes <= this.budget / 4 ? large : medium
  }

  private lender(pool: SlabPool): Slabs {
    return {
      bytes: pool.bytes,
      take: cancel => this.line.length > 0 || !this.fits(pool.bytes)
        ? this.line.wait(pool.bytes, this.waitMs, () => new UpstreamTimeoutError(
          `relay memory (router.relayMemoryBytes, ${this.budget} bytes, all lent for ${this.waitMs} ms)`), cancel)
        : pool.take(),
      give: b => {
        // to the pool of its size: a lender is chosen by what is lent as well as by size (`for`)
        ;(this.poolOf(b.length) ?? pool).give(b)
        this.serveLine()
      },
    }
  }

  /** In order: the first waiting read goes first, and the ones after it only if it went. */
  private serveLine(): void {
    for (let need = this.line.firstNeed; need !== undefined && this.fits(need); need = this.line.firstNeed)
      this.line.serve(this.poolOf(need)!.take())
  }

  /** the pool of slabs of `bytes` */
  private poolOf(bytes: number): SlabPool | undefined {
    return this.pools.find(p => p.bytes === bytes)
  }

  private fits(bytes: number): boolean {
    const lent = this.lent()
    return lent === 0 || lent + bytes <= this.budget
  }

  /** bytes of slabs lent to reads now */
  private lent(): number {
    let lent = 0
    for (const p of this.pools) lent += p.lent * p.bytes
    return lent
  }
}

/** A chunk body the relay iterates: views of a shard's answer, in order. */
export interface RelayBody extends AsyncIterable<Buffer> {
  destroy(): void
}

/** One window of a read: its slab, its answer, and its turn on the shard's connections. */
interface Window {
  slab: Buffer
  body: ShardBody
  release: () => void
}

export class WindowedRead implements RelayBody {
  /** set by the reader: resolves once every view it was given so far is written out */
  written: () => Promise<void> = () => Promise.resolve()
  /** stops a window still waiting for relay memory, a turn on the shard's connections or its head when the read is destroyed */
  private readonly cancel = new Cancel()
  /** the window being iterated */
  private current: Window | undefined
  /** the window after it, asked for ahead (see the theory above); owned here until the iterator takes it */
  private ahead: Promise<Window | undefined> | undefined
  /** resolves once the last retired window's slab is back; before any, what was written before this read */
  private retired: Promise<void> | undefined
  /** the first chunk offset of the next window to ask for */
  private next: number
  private ended = false

  constructor(private readonly shard: ShardClient, private readonly sid: string, private readonly index: number, private readonly sha256: string,
    start: number, private readonly end: number, private readonly slabs: Slabs) {
    this.next = start
    shard.outstanding++
  }

  /** Asks for the first window: a shard that refuses or does not answer fails here. */
  async open(): Promise<this> {
    try {
      this.current = await this.window()
    } catch (err) {
      this.destroy()
      throw err
    }
    return this
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      // destroyed after open (its client left) and before its first view was asked for
      if (this.ended) throw LEFT
      for (;;) {
        const w = this.current!
        if (this.next <= this.end) {
          // the next window once this one has landed whole and the one before it is written out (for the first
          // window ahead: what the reader had written to the response before this read, the chunk before it or a failover's earlier read)
          const before = this.retired ?? this.written()
          const ahead = w.body.settled().then(async whole => {
            // a window that failed is the end of this read: nothing is asked for after it
            if (!whole) return undefined
            await before
            return this.window()
          })
          // awaited below, or dropped by destroy: never an unhandled rejection meanwhile
          ahead.catch(() => {})
          this.ahead = ahead
        }
        try {
          for await (const v of w.body) yield v
        } catch (err) {
          // a cut or a silence mid-window, named with its shard like the failures before a byte
          throw shardFailure(this.shard.id, 'get_chunk', err)
        }
        // destroyed meanwhile (the body it destroyed ends quietly once its reader comes back): not an end
        if (this.ended) throw LEFT
        this.retire()
        if (this.ahead === undefined) return
        // still this read's while awaited: a destroy meanwhile closes it (destroy)
        const n = await this.ahead
        // destroyed meanwhile (destroy closes the window ahead): not an end, which would pass for a whole read
        if (this.ended) throw LEFT
        // the window before it ended whole (the loop above), so one ahead is always asked for; never a short read
        if (n === undefined) throw shardFailure(this.shard.id, 'get_chunk', new UpstreamCutError('the next window was not asked for', 'cut'))
        this.ahead = undefined
        this.current = n
      }
    } finally {
      this.destroy()
    }
  }

  destroy(): void {
    if (this.ended) return
    this.ended = true
    this.current?.body.destroy()
    this.cancel.cancel(LEFT)
    this.retire()
    // a window asked for ahead: no view of it was given, so its slab goes back once its connection is closed
    void this.ahead?.then(w => { if (w) this.drop(w.slab, w.body, w.release) }, () => {})
    this.ahead = undefined
    this.shard.outstanding--
  }

  /** Asks for the next window: a slab, a turn on the shard's connections, and the GET for its range. */
  private async window(): Promise<Window> {
    if (this.ended) throw LEFT
    const a = this.next
    const b = Math.min(this.end, a + this.slabs.bytes - 1)
    this.next = b + 1
    // destroy (the client left) stops the waits for memory and for a turn as well as the head's
    const slab = await this.slabs.take(this.cancel)
    let release: (() => void) | undefined
    let body: ShardBody | undefined
    try {
      // destroyed while it waited for memory
      if (this.ended) throw LEFT
      // a turn per window, not per read: a read whose client is slow holds its slabs, not a connection
      release = await this.shard.readSlot(this.cancel)
      if (this.ended) throw LEFT
      body = await this.shard.readChunkInto(this.sid, this.index, this.sha256, a, b, slab, this.cancel)
      // destroyed while its head came: nothing else would close it
      if (this.ended) throw LEFT
    } catch (err) {
      this.drop(slab, body, release)
      throw err
    }
    void body.settled().then(release)
    return { slab, body, release }
  }

  /** A window none of whose views was given out: its connection closed (no byte can land in the slab any more), its turn and its slab back. */
  private drop(slab: Buffer, body: ShardBody | undefined, release: (() => void) | undefined): void {
    body?.destroy()
    release?.()
    this.slabs.give(slab)
  }

  /** The window being iterated: its slab goes back once what was sent from it is written out; its turn, at once. */
  private retire(): void {
    const w = this.current
    this.current = undefined
    if (w === undefined) return
    w.release()
    this.retired = this.written().then(() => this.slabs.give(w.slab))
  }
}
