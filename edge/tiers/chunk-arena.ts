/**
 * Chunk memory that is faulted once and reused (issue 16).
 *
 * Why: a fill writes its chunk into a chunk-sized Buffer. Allocated fresh for
 * every fill (glibc maps 64 MiB anew each time), every 4 KiB page of it is
 * faulted in on its first write, and on this VM a fault costs 12–14 µs: about
 * 1.9 CPU-s of the edge's ~9 per 512 MiB filled went to that alone. An edge in
 * steady state evicts a chunk for every chunk it fills, so the evicted chunk's
 * memory, already faulted in, can take the next fill instead.
 *
 * Theory of operation. A slot is one chunk-sized Buffer and a count of its
 * holders. `take` gives a fill an idle slot (else a reserved one, else a new
 * one) with one hold, the fill's own. Every holder of the Buffer takes a hold
 * (`holdChunk`) before it can read the bytes and drops it (`dropChunk`) once it never will
 * again: the fill until the coalescer has committed it, the RAM tier while the
 * chunk is in its map, the disk tier's write queue until its write ended, each
 * player's Source from the synchronous lookup that found it until it is
 * released, and each write to a socket until its callback (the kernel has the
 * bytes, or the write failed). Only when the count reaches 0 does the slot go
 * back to the idle list, so a slot is never given out while anything can still
 * read it; a holder that never drops (a response cut before its callback) only
 * keeps that slot out of reuse, and the GC frees it as before.
 *
 * Holds are found by the Buffer itself (a WeakMap), so a Buffer that is not a
 * slot (another size, a promotion's read, memory the arena did not give) is
 * held and dropped for nothing. A slot whose Buffer was posted to the serve
 * threads (shared memory: edge/serve/serve-threads.ts) `escape`s: the threads
 * hold it on their own with no count here, so it is never reused, only
 * garbage-collected once no thread refers to it. Holding a slot that is idle
 * is a bug (a holder that read the Buffer without a hold) and throws.
 *
 * Slots whose pages were spliced into sockets (zero-copy RAM hits,
 * lib/net/zero-copy.ts) are `recycle`d before a fill takes them again: the
 * kernel may still be sending those pages after the write's callback, so the
 * slot gets fresh pages and the bytes in flight keep the old ones.
 *
 * Bounds: slots are one size (the chunk size; `resize` when the upstream's
 * manifests give another, which drops the idle and the reserved ones), at
 * most `keep` idle slots are kept (edge.maxFills: the memory the fills in
 * flight would hold anyway; more are left to the GC), and as many reserved
 * ones as the caller asks for (edge/main.ts bounds them).
 *
 * Reserved slots. Every chunk-sized Buffer created while the edge runs is a
 * new ArrayBuffer (64 MiB by default) that V8 counts: the next allocation of any
 * ArrayBuffer then sets off a young-generation GC (reason "external memory
 * pressure"), two of them to promote it, and an old-generation mark-compact
 * after (traced with --trace-gc on a cold edge reading a 512 MiB title: 19
 * collections of 1-35 ms on the event loop). So `reserve` creates slots
 * ahead, when the edge starts (edge/main.ts: as many as its RAM tier's
 * chunks, its fills and the spare, within a bound, and only with the splice
 * addon's allocator, whose memory is mapped and not touched: address space,
 * not resident memory, until a fill writes into it). `take` hands out an idle
 * slot first (faulted in already), then a reserved one, and creates a Buffer
 * only when neither is left. A reserved
 * slot is held by nothing (a hold on it throws, as on an idle one). A
 * reserve the allocator refuses midway keeps none: a system short of address
 * space has none to hold ahead.
 *
 * Prefaulted slots. A reserved slot is address space: the first fill to write
 * it faults every page in, and on this VM memory the host has taken back
 * faults in at 0.36-0.48 GB/s (a 2 MiB huge page in 4-7 ms), slower than a
 * shard sends a chunk, so an edge's first fills were bound by it
 * (docs/benchmarks.md, "An empty edge's memory faulted in at start"). An
 * appliance holds the memory it is configured for anyway, as a JVM with
 * AlwaysPreTouch or a database's buffer pool does: `prefault` faults the
 * reserved slots in behind the edge's start, in the order `take` hands them
 * out, one at a time on a pool thread (lib/net/zero-copy.ts `populate`, which
 * changes no byte, so a fill may take a slot meanwhile). Every chunk-sized
 * Buffer the RAM tier holds comes from here (fills, and the disk tier's
 * promotions and warming), so the memory faulted in is the RAM tier's, not
 * more. A slot already handed out is skipped (its taker faults its own
 * pages); a resize or the abort signal stops it, mid-slot. Faulting in only
 * pays once it is done: a fill that writes a slot while it is being faulted
 * in pays the same faults (the bench measured that too).
 */
export interface ArenaStats {
  /** bytes of idle slots, faulted in, waiting for a fill */
  idleBytes: number
  /** slots created by `reserve` and not handed out yet (address space, not memory) */
  reservedLeft: number
  /** slots handed out that were created then */
  allocated: number
  /** slots handed out that `reserve` had created */
  reserved: number
  /** slots handed out that were idle */
  reused: number
  /** bytes of reserved slots faulted in ahead (`prefault`) */
  prefaulted: number
  /** bytes `prefault` has still to fault in (0 once it is done or stopped, and when it never ran) */
  prefaultPending: number
}

class Slot {
  escaped = false
  /** `refs`: its holders, 1 for a slot handed out as it is made, 0 for a reserved one */
  constructor(readonly buf: Buffer, readonly arena: ChunkArena, public refs = 1) {}
}

const slots = new WeakMap<Buffer, Slot>()

export class ChunkArena {
  private readonly idle: Slot[] = []
  /** slots created ahead (`reserve`), never written */
  private readonly reserved: Slot[] = []
  /** stops a `prefault` in progress (a resize) */
  private prefaulting: AbortController | undefined
  private readonly stat: Omit<ArenaStats, 'reservedLeft'> = { idleBytes: 0, allocated: 0, reserved: 0, reused: 0, prefaulted: 0, prefaultPending: 0 }

  constructor(
    private size: number,
    private readonly keep: number,
    private readonly alloc: (size: number) => Buffer = Buffer.allocUnsafeSlow,
    /** before an idle slot is written again: false if it must not be (lib/net/zero-copy.ts recycles spliced memory) */
    private readonly recycle: (buf: Buffer) => boolean = () => true,
  ) {}

  /** A Buffer of `size` bytes held once (the caller's hold): an idle slot if one fits, else a reserved one, else new memory (a slot if it is the slot size). */
  take(size: number): Buffer {
    if (size !== this.size) return this.alloc(size)
    let s = this.idle.pop()
    if (s !== undefined && !this.recycle(s.buf)) {
      // its pages could not be renewed while the kernel may still send them: left to the GC, never written
      this.stat.idleBytes -= s.buf.length
      s.escaped = true
      s = undefined
    }
    if (s !== undefined) {
      this.stat.idleBytes -= s.buf.length
      this.stat.reused++
      s.refs = 1
      return s.buf
    }
    const r = this.reserved.pop()
    if (r !== undefined) {
      this.stat.reserved++
      r.refs = 1
      return r.buf
    }
    this.stat.allocated++
    const buf = this.alloc(size)
    slots.set(buf, new Slot(buf, this))
    return buf
  }

  /**
   * Creates slots until `count` are kept ahead, untouched (see "Reserved
   * slots"). Throws what the allocator throws (no address space left, an
   * overcommit limit), and then keeps none.
   */
  reserve(count: number): void {
    try {
      while (this.reserved.length < count) {
        const buf = this.alloc(this.size)
        // nothing holds it until `take` hands it out
        const s = new Slot(buf, this, 0)
        slots.set(buf, s)
        this.reserved.push(s)
      }
    } catch (err) {
      this.reserved.length = 0
      throw err
    }
  }

  /**
   * Faults in up to `bytes` of the reserved slots, the next to be handed out
   * first, one slot at a time (see "Prefaulted slots"). Resolves with the bytes
   * faulted in; stops early, without error, on `signal` or a resize (within
   * the slot in progress, `populate` checks between its steps), or when
   * `populate` cannot fault this memory in (it is not the splice addon's).
   */
  async prefault(bytes: number, populate: (b: Buffer, signal?: AbortSignal) => Promise<boolean> | false, signal: AbortSignal): Promise<number> {
    // `take` pops: the last reserved slot is handed out first
    const n = Math.min(this.reserved.length, Math.floor(bytes / this.size))
    const todo = this.reserved.slice(this.reserved.length - n).reverse()
    const stop = new AbortController()
    this.prefaulting?.abort()
    this.prefaulting = stop
    // the caller's signal or a resize
    const stopped = AbortSignal.any([signal, stop.signal])
    this.stat.prefaultPending = n * this.size
    let done = 0
    try {
      for (const s of todo) {
        if (stopped.aborted) break
        this.stat.prefaultPending -= s.buf.length
        // handed out meanwhile: its taker faults its own pages in
        if (!this.reserved.includes(s)) continue
        const faulting = populate(s.buf, stopped)
        if (faulting === false || !await faulting) break
        done += s.buf.length
        this.stat.prefaulted += s.buf.length
      }
    } finally {
      if (this.prefaulting === stop) {
        this.prefaulting = undefined
        this.stat.prefaultPending = 0
      }
    }
    return done
  }

  /** The upstream's chunk size, learned from a manifest: slots are that size from now on. */
  resize(size: number): void {
    if (size === this.size) return
    this.prefaulting?.abort()
    this.size = size
    this.idle.length = 0
    this.reserved.length = 0
    this.stat.idleBytes = 0
  }

  stats(): ArenaStats {
    return { ...this.stat, reservedLeft: this.reserved.length }
  }

  /** A slot's last hold was dropped: idle if it can be used again and there is room. */
  released(s: Slot): void {
    if (s.escaped || s.buf.length !== this.size || this.idle.length >= this.keep) return
    this.idle.push(s)
    this.stat.idleBytes += s.buf.length
  }
}

/** One more holder of `buf` (a no-op unless it is a slot). Take it in the same synchronous step as the lookup that found `buf`. */
export function holdChunk(buf: Buffer): void {
  const s = slots.get(buf)
  if (s === undefined) return
  if (s.refs <= 0) throw new Error('chunk slot held while idle: a holder read it without a hold')
  s.refs++
}

/** A holder of `buf` is done with it for good. */
export function dropChunk(buf: Buffer): void {
  const s = slots.get(buf)
  if (s === undefined) return
  if (s.refs <= 0) throw new Error('chunk slot dropped more often than held')
  if (--s.refs === 0) s.arena.released(s)
}

/** `buf`'s memory is shared with holders this count cannot see (the serve threads): it is never reused. */
export function escapeChunk(buf: Buffer): void {
  const s = slots.get(buf)
  if (s !== undefined) s.escaped = true
}

/**
 * Holds `buf` for one write to a socket and returns the write's callback,
 * which drops that hold once the kernel has the bytes. A write that failed
 * keeps its hold, as the disk tier's read buffers do (buffer-pool.ts): a cut
 * response only costs that slot its reuse.
 */
export function heldForWrite(buf: Buffer): ((err?: Error | null) => void) | undefined {
  if (!slots.has(buf)) return undefined
  holdChunk(buf)
  return err => { if (!err) dropChunk(buf) }
}
