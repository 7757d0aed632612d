import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../../lib/logger.js'
import type { PrefillMetrics } from '../../lib/metrics.js'
import type { ChunkCache } from '../tiers/cache.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { FillWindow } from './fill-window.js'
import { chunkValue, planPrefill, type PlannedChunk, type TitleDemand } from './prefill-plan.js'
import { chunkRef, fileOf, type Title } from '../title.js'
import { parseTierKey } from '../policy/policy.js'

/**
 * Proactive prefill: fill, while the network is quiet, the chunks players are
 * most likely to ask for next (edge/prefill/prefill-plan.ts ranks them from the
 * router's trending: plays × position share, and for an adaptive title × each
 * rendition's share of reads, so only the rungs viewers watch are filled).
 *
 * Theory of operation. One pass at a time (`pass`); a pass plans, then walks
 * the plan one chunk at a time, so prefill holds at most one fill slot. Before
 * each chunk it
 *   1. stops if the admin stopped it, or (automatic passes) the window closed;
 *   2. skips it if the window's byte budget cannot take it;
 *   3. waits while players need the upstream link: a player fill in flight, a
 *      player miss less than `quietMs` ago, or the disk still writing the
 *      previous prefilled chunk (players' disk reads come first);
 *   4. waits for the rate cap: chunk k starts no earlier than the bytes of
 *      chunks 0..k-1 allow at `rateMBps`, and the pass ends no earlier than
 *      all of its bytes allow, so bytes/duration of a pass ≤ the cap (the
 *      cap is an average: one chunk's fill runs at line speed);
 *   5. admission: asks the tier it fills (disk; RAM on a RAM-only edge) which
 *      keys its policy would evict (`victims`). If any victim's expected value
 *      (the same plays × position model) is at least the chunk's, the chunk is
 *      refused: prefill never evicts a chunk hotter than the one it brings in.
 *      A cached chunk of a title nobody is watching is worth 0 and may go. A
 *      chunk the policy itself would decline (it names the chunk among the
 *      victims) is refused too: it would not be kept;
 *   6. fetches it through the coalescer (`Coalescer.prefill`): the same
 *      one-fetch-per-chunk path as player misses, so a player asking for the
 *      same chunk joins the prefill's fill and vice versa.
 * Automatic passes start every `checkMs` inside the window; `start()` (admin)
 * runs a pass now, inside the window or not, under the same budget and cap;
 * `stop()` ends the running pass after its current chunk and suspends
 * automatic passes until the next `start()`.
 */
export interface PrefillOptions {
  window: FillWindow
  rateMBps: number
  budgetBytes: number
  quietMs: number
  checkMs: number
}

export interface PrefillDeps {
  /** titles in demand, with what planPrefill needs */
  demand: () => Promise<{ demand: TitleDemand; title: Title }[]>
  cache: ChunkCache
  fills: Coalescer
  metrics: PrefillMetrics
  logger: Logger
  clock?: () => number
}

export type PrefillState = 'idle' | 'planning' | 'running' | 'paused' | 'stopped'

export interface Progress {
  startedAt: string | null
  endedAt: string | null
  manual: boolean
  result: string | null
  plannedChunks: number
  plannedBytes: number
  doneChunks: number
  fetchedBytes: number
  cached: number
  joined: number
  refused: number
  failed: number
  overBudget: number
  pauses: number
  /** fetched bytes / seconds since the pass started, MB/s */
  rateMBps: number
}

const emptyProgress = (manual: boolean, now: number): Progress => ({
  startedAt: new Date(now).toISOString(), endedAt: null, manual, result: null, plannedChunks: 0, plannedBytes: 0, doneChunks: 0,
  fetchedBytes: 0, cached: 0, joined: 0, refused: 0, failed: 0, overBudget: 0, pauses: 0, rateMBps: 0,
})

export class PrefillRunner {
  state: PrefillState = 'idle'
  progress: Progress | null = null
  private pass: Promise<void> | undefined
  private stopRequested = false
  /** admin stop: no automatic passes until start() */
  private suspended = false
  private windowKey: string | number | undefined
  private windowBytes = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private readonly now: () => number

  constructor(private readonly d: PrefillDeps, private readonly o: PrefillOptions) {
    this.now = d.clock ?? Date.now
  }

  /** the settings in effect (they change with a reload), for GET /v1/prefill */
  get settings(): { window: string; rateMBps: number; budgetBytes: number } {
    return { window: this.o.window.spec, rateMBps: this.o.rateMBps, budgetBytes: this.o.budgetBytes }
  }

  get running(): boolean {
    return this.pass !== undefined
  }

  get bytesThisWindow(): number {
    this.rollWindow(true)
    return this.windowBytes
  }

  startTimer(): void {
    this.timer = setInterval(() => {
      if (!this.suspended && !this.pass && this.o.window.contains(new Date(this.now()))) void this.run(false)
    }, this.o.checkMs)
    this.timer.unref()
  }

  /**
   * A config reload (edge/run/reload-table.ts): the window and budget apply
   * from the running pass's next chunk (a closed window ends an automatic
   * pass there), the rate cap too, the check interval from now.
   */
  reconfigure(o: PrefillOptions): void {
    const retime = this.timer !== undefined && o.checkMs !== this.o.checkMs
    Object.assign(this.o, o)
    if (retime) {
      clearInterval(this.timer)
      this.startTimer()
    }
  }

  /** Admin start: a pass now (resolves when it has started, with its promise). */
  start(): { started: boolean; done: Promise<void> } {
    this.suspended = false
    if (this.pass) return { started: false, done: this.pass }
    return { started: true, done: this.run(true) }
  }

  /** Admin stop: the running pass ends after its current chunk; automatic passes wait for start(). */
  async stop(): Promise<void> {
    this.suspended = true
    this.stopRequested = true
    await this.pass
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.stop()
  }

  /** The plan as it would run now: no fetch. */
  async plan(): Promise<{ chunks: PlannedChunk[]; bytes: number; budgetLeft: number }> {
    const titles = await this.d.demand()
    const left = Math.max(0, this.o.budgetBytes - this.bytesThisWindow)
    const byId = new Map(titles.map(t => [t.title.manifest.contentId, t]))
    const chunks = planPrefill(titles.map(t => t.demand), (id, i, rid) => this.isCached(byId, id, i, rid), left)
    return { chunks, bytes: chunks.reduce((a, c) => a + c.bytes, 0), budgetLeft: left }
  }

  private isCached(byId: Map<string, { title: Title }>, contentId: string, index: number, rid: string | undefined): boolean {
    const t = byId.get(contentId)
    const file = t === undefined ? undefined : fileOf(t.title, rid)
    return file !== undefined && index < file.chunks.length && this.d.cache.has(chunkRef(file, index).key)
  }

  /** The budget window `now` is in; a manual pass outside the window counts against the day's, as does `always`. */
  private rollWindow(manual: boolean): void {
    const now = new Date(this.now())
    const day = `day-${Math.floor(now.getTime() / 86_400_000)}`
    // `always` has no window start: its budget is per (UTC) day
    const key = this.o.window.spec === 'always' ? day : this.o.window.start(now) ?? (manual ? day : undefined)
    if (key !== undefined && key !== this.windowKey) {
      this.windowKey = key
      this.windowBytes = 0
    }
  }

  private run(manual: boolean): Promise<void> {
    this.stopRequested = false
    this.pass = this.runPass(manual)
      .catch(err => {
        this.d.metrics.passes.inc({ result: 'failed' })
        if (this.progress) this.progress.result = `failed: ${(err as Error).message}`
        this.d.logger.warn({ err: (err as Error).message }, 'prefill pass failed')
      })
      .finally(() => {
        this.pass = undefined
        this.state = this.suspended ? 'stopped' : 'idle'
        if (this.progress) this.progress.endedAt = new Date(this.now()).toISOString()
      })
    return this.pass
  }

  private async runPass(manual: boolean): Promise<void> {
    const { metrics, cache, fills, logger } = this.d
    const t0 = this.now()
    const p = emptyProgress(manual, t0)
    this.progress = p
    this.state = 'planning'
    this.rollWindow(manual)
    const titles = await this.d.demand()
    const byId = new Map(titles.map(t => [t.title.manifest.contentId, t]))
    const plan = planPrefill(titles.map(t => t.demand), (id, i, rid) => this.isCached(byId, id, i, rid), Math.max(0, this.o.budgetBytes - this.windowBytes))
    p.plannedChunks = plan.length
    p.plannedBytes = plan.reduce((a, c) => a + c.bytes, 0)
    this.state = 'running'
    let perMs = this.o.rateMBps * 1000 // bytes per ms
    let nextAt = this.now()
    let result = 'done'
    for (const c of plan) {
      if (this.stopRequested || this.closed) { result = 'stopped'; break }
      if (!manual && !this.o.window.contains(new Date(this.now()))) { result = 'window_closed'; break }
      perMs = this.o.rateMBps * 1000 // a reload may change the cap mid-pass
      this.rollWindow(manual)
      if (this.windowBytes + c.bytes > this.o.budgetBytes) {
        p.overBudget++
        metrics.chunks.inc({ result: 'over_budget' })
        if (this.windowBytes >= this.o.budgetBytes) { result = 'budget_spent'; break }
        continue
      }
      const file = fileOf(byId.get(c.contentId)!.title, c.rid)
      if (file === undefined) continue
      const ref = chunkRef(file, c.index)
      if (cache.has(ref.key)) { p.cached++; metrics.chunks.inc({ result: 'cached' }); continue }
      if (!(await this.quiet(p))) { result = 'stopped'; break }
      if (perMs > 0 && nextAt > this.now()) await sleep(nextAt - this.now())
      if (!this.admissible(c, ref.key, byId)) { p.refused++; metrics.chunks.inc({ result: 'refused' }); continue }
      const startedAt = this.now()
      let got = fills.prefill(ref)
      while (got.result === 'busy') {
        if (!(await this.quiet(p))) break
        await sleep(50)
        got = fills.prefill(ref)
      }
      if (got.result === 'busy') { result = 'stopped'; break }
      if (got.result === 'cached') { p.cached++; metrics.chunks.inc({ result: 'cached' }); continue }
      if (!('fill' in got)) continue
      try {
        await got.fill.done
      } catch (err) {
        p.failed++
        metrics.chunks.inc({ result: 'failed' })
        logger.warn({ contentId: c.contentId, rendition: c.rid, index: c.index, err: (err as Error).message }, 'prefill of a chunk failed')
        continue
      }
      p.doneChunks++
      if (got.result === 'joined') { p.joined++; metrics.chunks.inc({ result: 'joined' }); continue }
      metrics.chunks.inc({ result: 'fetched' })
      metrics.bytes.inc(c.bytes)
      p.fetchedBytes += c.bytes
      this.windowBytes += c.bytes
      if (perMs > 0) nextAt = Math.max(nextAt, startedAt) + c.bytes / perMs
      p.rateMBps = p.fetchedBytes / 1e6 / Math.max(1e-3, (this.now() - t0) / 1000)
    }
    // the last chunk on disk before the pass reports done, so a player right after finds it
    while (cache.disk.pendingWrites > 0 && !this.closed) await sleep(10)
    // the pass lasts at least as long as its bytes take at the cap
    if (perMs > 0 && result !== 'stopped' && nextAt > this.now()) await sleep(nextAt - this.now())
    p.rateMBps = p.fetchedBytes / 1e6 / Math.max(1e-3, (this.now() - t0) / 1000)
    p.result = result
    metrics.passes.inc({ result })
    logger.info({ ...p }, 'prefill pass ended')
  }

  /** Waits until players leave the upstream link and disk to prefill. False if stopped meanwhile. */
  private async quiet(p: Progress): Promise<boolean> {
    let paused = false
    for (;;) {
      if (this.stopRequested || this.closed) return false
      const busy = this.d.fills.playerFills > 0 || performance.now() - this.d.fills.lastPlayerFill < this.o.quietMs
        || this.d.cache.disk.pendingWrites > 0
      if (!busy) break
      if (!paused && (this.d.fills.playerFills > 0 || performance.now() - this.d.fills.lastPlayerFill < this.o.quietMs)) {
        paused = true
        p.pauses++
        this.d.metrics.pauses.inc()
        this.state = 'paused'
      }
      await sleep(paused ? Math.min(100, Math.max(10, this.o.quietMs / 4)) : 10)
    }
    this.state = 'running'
    return true
  }

  /** Step 5 of the theory: no victim at least as valuable as the chunk, and a policy that would keep it. */
  private admissible(c: PlannedChunk, key: string, byId: Map<string, { demand: TitleDemand }>): boolean {
    const tier = this.d.cache.prefillTier === 'disk' ? this.d.cache.disk : this.d.cache.ram
    const victims = tier.victims(key, c.bytes)
    // the policy would decline the chunk itself (predictive: its title is worth less here than what it would replace)
    if (victims.includes(key)) return false
    for (const key of victims) {
      const p = parseTierKey(key)
      if (p === undefined) continue
      const slash = p[0].indexOf('/')
      const t = byId.get(slash < 0 ? p[0] : p[0].slice(0, slash))
      if (t === undefined) continue // a title nobody is watching: worth 0
      if (chunkValue(t.demand, p[1], slash < 0 ? undefined : p[0].slice(slash + 1)) >= c.value) return false
    }
    return true
  }
}
