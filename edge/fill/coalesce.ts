import { CdnError, ClientClosedError, ServiceUnavailableError, UpstreamTimeoutError } from '../../lib/errors.js'
import { IntervalLog } from '../../lib/interval-log.js'
import type { Logger } from '../../lib/logger.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { populate } from '../../lib/net/zero-copy.js'
import { Fill, type ChunkFetch, type CrcsFetch, type FillEvents, type FillOptions, type FillUpstream } from './fill.js'
import { refName, type ChunkRef } from '../title.js'

/**
 * In-flight chunk fetches: exactly one Fill per missing chunk, however many
 * players (and readahead, and later prefill) ask for it.
 *
 * Theory of operation. `inflight` maps a chunk key to its Fill from the moment
 * the first asker creates it until the fill ends; joining is a synchronous
 * Map lookup, so two askers cannot both miss it. The coalescer, not any
 * player, owns each fill's deadline (`fillTimeoutMs`, counted from creation,
 * queueing included); a player that leaves only stops reading. At most
 * `maxFills` fills hold a slot (and a chunk-sized Buffer) at once; more wait
 * in FIFO order without memory. A waiting fill whose every player left
 * (`leave`) is withdrawn: it was only theirs, and would otherwise take a
 * slot and fetch a chunk ahead of the players still waiting. Readahead
 * takes a slot only while another is left for players, and never queues.
 * Readahead and prefill also wait for the disk: they start only if its write
 * queue has room for their chunk and for every fill in flight (`room`), so a
 * burst of player fills completing at once still finds room there
 * (edge/tiers/disk-writes.ts).
 *
 * The end of a fill happens once, in `settle`: on success the verified Buffer
 * goes to the cache (`commit`) and then the fill leaves `inflight`, in the same
 * synchronous step, so there is no moment when a chunk is in neither. On
 * failure it just leaves `inflight`; the error has already reached its readers,
 * and the next asker starts a fresh fill. A purge marks fills of the title so
 * their bytes are not committed.
 *
 * The spare. Allocating a chunk-sized Buffer tells V8 of that much more
 * external memory, and V8 answers with GC work at once (on a fresh edge a
 * miss measured 10-14 ms of incremental marking inside the allocation, and a
 * major GC of tens of ms soon after). So one buffer of `spareBytes` (the
 * cluster's chunk size) is allocated ahead, at `prepare` (before the edge
 * says it is ready) and again in the turn after a fill that took it ends; a
 * player's fill (not readahead's or prefill's) of that size takes it, so a
 * miss's first byte does not wait for that GC. Its pages are faulted in
 * behind it (`prepare`), so the miss's first block does not pay their
 * first-touch faults either: the spare is resident from the start.
 */
/** the spare's pages faulted in per event-loop turn (`touch`, memory `populate` cannot take): 2 MiB, one huge page, up to 7 ms on a VM */
const TOUCH_BYTES = 2 * 1024 * 1024

export interface CoalescerOptions extends FillOptions {
  maxFills: number
  fillTimeoutMs: number
  /** the size of the spare buffer kept for players' fills (the cluster's chunk size); 0: none */
  spareBytes?: number
  /** faults the spare's pages in off the event loop, true once done; false: not this memory (then `touch`). Default: the splice addon's, for its memory */
  populate?: (b: Buffer) => Promise<boolean> | false
}

export interface CoalescerDeps {
  fetch: ChunkFetch
  /** a chunk's block list, for fills of titles whose manifest lists blocks (fill.ts) */
  crcs?: CrcsFetch
  /** is the chunk in a cache tier now? ("check the cache again inside") */
  cached: (key: string) => boolean
  /** receives every verified chunk; `prefill` when no player asked for it (prefill.ts) */
  /** `crcs`: the block list every block of `buf` passed (Fill.crcs), when it had one */
  commit: (ref: ChunkRef, buf: Buffer, prefill: boolean, crcs: Buffer | undefined) => void
  /** the upstream holds another version of the title: the manifest is stale */
  stale: (contentId: string) => void
  /** can the cache take `bytes` more verified bytes now (its disk write queue)? Asked for readahead and prefill only; absent: always */
  room?: (bytes: number) => boolean
  metrics: EdgeMetrics
  logger: Logger
}

export type PrefetchResult = 'started' | 'cached' | 'skipped'

export type PrefillStart = { result: 'started' | 'joined'; fill: Fill } | { result: 'cached' | 'busy' }

export class Coalescer {
  private readonly inflight = new Map<string, Fill>()
  private readonly waiting: { fill: Fill; from: number }[] = []
  /** players (and prefills) that asked for a fill and have not left: a waiting fill with none is withdrawn */
  private readonly askers = new WeakMap<Fill, number>()
  /** fills withdrawn from the line (`leave`): they never held a slot */
  private readonly withdrawn = new WeakSet<Fill>()
  private readonly purged = new WeakSet<Fill>()
  private readonly prefills = new WeakSet<Fill>()
  private prefillsInFlight = 0
  /** chunk bytes of the fills in `inflight`: what they will commit */
  private inflightBytes = 0
  private running = 0
  private closed = false
  /** performance.now() of the last fill a player (or its readahead) started: prefill keeps quiet after it */
  lastPlayerFill = -Infinity
  /** ms with at least one fill in flight, up to `busySince` (reelcdn_edge_fill_busy_seconds_total) */
  private busyMs = 0
  /** performance.now() when the fills in flight went from none to one; undefined while none is */
  private busySince: number | undefined

  private readonly upstream: FillUpstream
  /** a buffer allocated ahead for the next player's fill (see the spare, above) */
  private spare: Buffer | undefined
  private spareDue = false
  private readonly playerOpts: FillOptions
  /** the warning for fills without their block list: once a minute for the upstream (the edge has one), every one counted */
  private readonly unlistedLog = new IntervalLog(60_000)

  constructor(private readonly deps: CoalescerDeps, private readonly opts: CoalescerOptions) {
    this.upstream = { chunk: deps.fetch, crcs: deps.crcs }
    this.playerOpts = { ...opts, alloc: size => this.takeSpare(size) }
  }

  /** Allocates the spare now (startup), so that not even the first miss allocates, and faults its pages in behind it. */
  prepare(): void {
    const n = this.opts.spareBytes ?? 0
    if (n > 0 && this.spare === undefined && !this.closed) {
      const b = this.allocate(n)
      this.spare = b
      // the splice addon's memory is faulted in off the event loop; any other, a huge page a turn here
      const faulting = (this.opts.populate ?? populate)(b)
      if (faulting === false) this.touch(b, 0)
      else void faulting.then(done => { if (!done) this.touch(b, 0) }, () => this.touch(b, 0))
    }
  }

  /**
   * Writes a byte of every page of the spare, TOUCH_BYTES a turn, while it is
   * still the spare: memory malloc just mapped is faulted in on its first
   * write, which on a VM can cost milliseconds per 2 MiB (docs/benchmarks.md,
   * row fill), and a player's miss would pay it in its first block. The fill
   * that takes the spare pays only for the pages not reached yet; the work is
   * what that fill would have done, done before it (a reused slot's pages are
   * faulted already: a write each, nothing more). Only for memory the splice
   * addon cannot fault in on a pool thread (`populate`, lib/net/zero-copy.ts):
   * traced, a turn here took 7 ms per fresh 2 MiB page, 32 such turns after
   * every fill that took the spare, and a miss landing among them waited.
   */
  private touch(b: Buffer, from: number): void {
    if (this.spare !== b || this.closed || from >= b.length) return
    const end = Math.min(b.length, from + TOUCH_BYTES)
    for (let off = from; off < end; off += 4096) b[off] = 0
    setImmediate(() => this.touch(b, end)).unref()
  }

  private allocate(size: number): Buffer {
    return this.opts.alloc?.(size) ?? Buffer.allocUnsafeSlow(size)
  }

  private takeSpare(size: number): Buffer {
    const b = this.spare
    if (b === undefined || b.length !== size) return this.allocate(size)
    this.spare = undefined
    return b
  }

  /** After a fill ends: a new spare in the next turn, if it was taken (a fill's end is off every player's path). */
  private refill(): void {
    if (this.spareDue || this.spare !== undefined || !(this.opts.spareBytes! > 0)) return
    this.spareDue = true
    setImmediate(() => {
      this.spareDue = false
      this.prepare()
    }).unref()
  }

  /** Fills in flight, queued ones included. */
  get size(): number {
    return this.inflight.size
  }

  /**
   * Seconds since start with at least one fill in flight (queued ones
   * included), the one in progress counted up to now: the time the edge spent
   * filling, however many fills overlapped. Exact where sampling the
   * in-flight gauge is not: the fill row's flash crowd divides it by the time
   * the bytes alone would take (bench/rows/fill.ts), and its fills last a
   * fraction of a second.
   */
  busySeconds(): number {
    return (this.busyMs + (this.busySince === undefined ? 0 : performance.now() - this.busySince)) / 1000
  }

  has(key: string): boolean {
    return this.inflight.has(key)
  }

  /** Fills in flight for players (readahead included), not prefill. */
  get playerFills(): number {
    return this.inflight.size - this.prefillsInFlight
  }

  /**
   * The fill for `ref`: joined if one is in flight, else started at `from`.
   * Undefined when the chunk turned out to be cached meanwhile: look it up again.
   */
  join(ref: ChunkRef, from: number): { fill: Fill; joined: boolean } | undefined {
    const have = this.inflight.get(ref.key)
    if (have) {
      // a player joined a prefill: from now on it is a player's fill (committed as one, and counted as player traffic)
      if (this.prefills.delete(have)) this.prefillsInFlight--
      this.asked(have)
      return { fill: have, joined: true }
    }
    if (this.deps.cached(ref.key)) return undefined
    if (this.closed) throw new ServiceUnavailableError('the edge is shutting down')
    this.lastPlayerFill = performance.now()
    const fill = this.create(ref, from, false, true)
    this.asked(fill)
    return { fill, joined: false }
  }

  /**
   * A player that joined `fill` left before its first byte. If no one else
   * asked for it and it still waits for a slot, it is withdrawn (failed with
   * a ClientClosedError nobody reads, counted as `withdrawn`): its chunk is
   * asked for afresh by the next player who wants it. A fill that started
   * goes on for whoever reads the chunk next.
   */
  leave(fill: Fill): void {
    const n = (this.askers.get(fill) ?? 1) - 1
    this.askers.set(fill, n)
    const i = this.waiting.findIndex(w => w.fill === fill)
    if (n > 0 || i < 0) return
    // out of the line and of `inflight` now: a slot that frees before its end (settle) goes to the next in line
    this.waiting.splice(i, 1)
    this.withdrawn.add(fill)
    this.forget(fill)
    fill.fail(new ClientClosedError(`every player of chunk ${refName(fill.ref)} left while its fill waited for a slot`))
  }

  private asked(fill: Fill): void {
    this.askers.set(fill, (this.askers.get(fill) ?? 0) + 1)
  }

  /** Readahead (and later prefill): starts a fill only if a slot is free beyond the one kept for players. */
  prefetch(ref: ChunkRef): PrefetchResult {
    if (this.inflight.has(ref.key) || this.deps.cached(ref.key)) return 'cached'
    if (this.closed || this.running + 1 >= this.opts.maxFills || this.noRoom(ref, 'readahead')) return 'skipped'
    this.create(ref, 0)
    return 'started'
  }

  /** The disk would have no room for this chunk and the fills in flight: counted, and the caller holds back. */
  private noRoom(ref: ChunkRef, by: 'readahead' | 'prefill'): boolean {
    if (this.deps.room === undefined || this.deps.room(this.inflightBytes + ref.size)) return false
    this.deps.metrics.diskBackpressure.inc({ by })
    return true
  }

  /**
   * Prefill: the same one-fetch-per-chunk path as players. Joins a fill in
   * flight (a player's fill then serves both), and starts one only while a
   * slot is left for players, like readahead; 'busy' otherwise. Its verified
   * chunk is committed with `prefill = true`, unless a player joined it.
   */
  prefill(ref: ChunkRef): PrefillStart {
    const have = this.inflight.get(ref.key)
    if (have) {
      // prefill wants the chunk too, and never leaves: a waiting fill it joined is not withdrawn
      this.asked(have)
      return { result: 'joined', fill: have }
    }
    if (this.deps.cached(ref.key)) return { result: 'cached' }
    if (this.closed || this.running + 1 >= this.opts.maxFills || this.noRoom(ref, 'prefill')) return { result: 'busy' }
    const fill = this.create(ref, 0, true)
    return { result: 'started', fill }
  }

  /** Fills of this title still run for their readers, but their bytes are not cached. */
  purge(contentId: string): void {
    for (const fill of this.inflight.values()) if (fill.ref.contentId === contentId) this.purged.add(fill)
  }

  /** Fails every fill: readers get a 503; nothing more is cached. */
  close(): void {
    this.closed = true
    this.spare = undefined
    const err = new ServiceUnavailableError('the edge is shutting down')
    for (const fill of [...this.inflight.values()]) fill.fail(err)
  }

  private create(ref: ChunkRef, from: number, prefill = false, player = false): Fill {
    const fill = new Fill(ref, this.upstream, player ? this.playerOpts : this.opts, this.events(ref))
    fill.deadline = fill.createdAt + this.opts.fillTimeoutMs
    if (this.inflight.size === 0) this.busySince = performance.now()
    this.inflight.set(ref.key, fill)
    this.inflightBytes += ref.size
    if (prefill) {
      this.prefills.add(fill)
      this.prefillsInFlight++
    }
    const timer = setTimeout(() => fill.fail(new UpstreamTimeoutError(`chunk ${refName(ref)} (no verified chunk within edge.fillTimeoutMs = ${this.opts.fillTimeoutMs} ms)`)),
      this.opts.fillTimeoutMs)
    timer.unref()
    if (this.running < this.opts.maxFills) this.begin(fill, from)
    else this.waiting.push({ fill, from })
    fill.done.then(
      buf => this.settle(fill, timer, buf, undefined),
      err => this.settle(fill, timer, undefined, err as CdnError),
    )
    return fill
  }

  /** What a fill reports on its way: upstream bytes, resumed requests, a block list it could not have. */
  private events(ref: ChunkRef): FillEvents {
    const { metrics, logger } = this.deps
    return {
      bytes: n => metrics.upstreamBytes.inc(n),
      retry: (reason, err, at) => {
        metrics.fillRetries.inc({ reason })
        logger.info({ chunk: refName(ref), at, code: err.code, err: err.message }, 'chunk fill cut upstream; resuming')
      },
      unlisted: err => {
        metrics.blockListFailures.inc({ reason: err.code === 'CDN_ERR_NOT_FOUND' ? 'not_found' : err.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout' : 'upstream' })
        const note = this.unlistedLog.take()
        if (note) logger.warn({ chunk: refName(ref), code: err.code, err: err.message, notLogged: note.skipped },
          'no block list for a chunk fill; its bytes are released as they arrive, its last byte once the whole chunk verifies ' +
          `(logged once a minute; every one is counted in reelcdn_edge_block_list_failures_total, ${note.skipped} since the last warning)`)
      },
    }
  }

  private begin(fill: Fill, from: number): void {
    this.running++
    fill.start(from)
  }

  private settle(fill: Fill, timer: NodeJS.Timeout, buf: Buffer | undefined, err: CdnError | undefined): void {
    clearTimeout(timer)
    const { metrics, logger } = this.deps
    const ref = fill.ref
    const secs = (performance.now() - fill.createdAt) / 1000
    const prefill = this.prefills.delete(fill)
    if (prefill) this.prefillsInFlight--
    if (buf !== undefined && !this.purged.has(fill)) this.deps.commit(ref, buf, prefill, fill.crcs)
    // the tiers hold what they kept (edge/tiers/chunk-arena.ts); the fill's readers hold their own
    fill.drop()
    this.forget(fill)
    const withdrawn = this.withdrawn.has(fill)
    if (!withdrawn) metrics.fillsByFile.inc({ file: ref.kind ?? 'title', result: buf !== undefined ? 'ok' : 'error' })
    if (buf !== undefined) {
      metrics.fillSeconds.observe({ result: 'ok' }, secs)
      if (this.purged.has(fill)) metrics.fillFailures.inc({ reason: 'purged' })
    } else if (withdrawn) metrics.fillFailures.inc({ reason: 'withdrawn' })
    else {
      metrics.fillSeconds.observe({ result: 'error' }, secs)
      const reason = err?.statusCode === 504 ? 'timeout' : err?.code === 'CDN_ERR_UPSTREAM_DIGEST' ? 'digest' : 'upstream'
      metrics.fillFailures.inc({ reason })
      if (err?.code === 'CDN_ERR_UPSTREAM_VERSION') this.deps.stale(ref.contentId)
      if (err?.statusCode !== 503) logger.warn({ chunk: refName(ref), code: err?.code, err: err?.message }, 'chunk fill failed')
    }
    // a fill that never got a slot holds none
    const i = this.waiting.findIndex(w => w.fill === fill)
    if (i >= 0) this.waiting.splice(i, 1)
    else if (!withdrawn) this.running--
    while (this.running < this.opts.maxFills && this.waiting.length) {
      const next = this.waiting.shift()!
      this.begin(next.fill, next.from)
    }
    this.refill()
  }

  /** `fill` leaves `inflight` (once: at its withdrawal or its end), so the next asker of its chunk starts afresh. */
  private forget(fill: Fill): void {
    const ref = fill.ref
    if (this.inflight.get(ref.key) !== fill) return
    this.inflight.delete(ref.key)
    this.inflightBytes -= ref.size
    if (this.inflight.size === 0 && this.busySince !== undefined) {
      this.busyMs += performance.now() - this.busySince
      this.busySince = undefined
    }
  }
}
