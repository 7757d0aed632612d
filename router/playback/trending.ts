import Database from 'better-sqlite3'
import { z } from 'zod'
import { BadRequestError } from '../../lib/errors.js'
import { openDatabase } from '../../lib/storage/sqlite.js'
import { isContentId } from '../../lib/ids.js'
import { RENDITION_ID, RENDITION_ID_RULE } from '../../lib/media/rendition.js'
import { MergedCounts, WindowCounter, type Ring, type WindowName } from './window-counter.js'

/**
 * Demand, as edges report it: plays per title in sliding windows, and where in
 * each title people watch (positions in 20 equal slices of its length, since
 * openings are watched far more than endings). Prefill ranks chunks by both.
 *
 * Memory is constant per title: one WindowCounter ring set for plays (key =
 * contentId) and one per position slice (key = contentId#slice).
 *
 * An adaptive title (issue 15) is also counted per rendition, as an edge
 * reports it, in two keys: its plays under `contentId#r:rid` and its reads
 * (the sum of the report's slices) under `contentId#r:rid#reads` (at most 16
 * renditions a title, the manifest's limit). Not its reads by slice: a key is
 * 186 numbers, so 20 slices for each of 5 rungs made an adaptive title cost 6×
 * a single file's memory, snapshot and peer exchange (measured: 241 MB against
 * 40 MB for 1,000 titles), and the title's own slices already say where in
 * time its viewers are (rungs are aligned in time, and an edge counts a
 * title's slices from its video reads by slice of each rung's file). The keys
 * contain '#', so neither /v1/trending nor a router from before issue 15 that
 * merges this one's state (trending-peers.ts) lists any as a title or reads
 * any as a title's slice. A report without renditions (an edge from before
 * issue 15, or a single-file title) is recorded as before.
 *
 * Persistence: the counters are snapshotted to SQLite every `snapshotMs` and at
 * close, and loaded at start, so a restart does not forget. Several routers:
 * see window-counter.ts; each router's own counts are stamped with its id and
 * peers' states merged by replacement.
 */
export const SLICES = 20

export const demandReportSchema = z.object({
  edgeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  titles: z.array(z.object({
    contentId: z.string().refine(isContentId, 'a valid contentId'),
    /** new sessions (plays) since the last report */
    plays: z.number().int().min(0).max(1e9),
    /** chunk reads since the last report, by slice of the title (0 = opening) */
    slices: z.array(z.number().int().min(0).max(1e12)).length(SLICES).optional(),
    /** an adaptive title's counts per rendition: its plays (sessions that read it), and reads by slice of its file */
    renditions: z.array(z.object({
      id: z.string().regex(RENDITION_ID, RENDITION_ID_RULE),
      plays: z.number().int().min(0).max(1e9),
      slices: z.array(z.number().int().min(0).max(1e12)).length(SLICES).optional(),
    }).strict()).max(16).optional(),
  }).strict()).max(10_000),
}).strict()

export type DemandReport = z.infer<typeof demandReportSchema>

export function parseDemandReport(body: unknown): DemandReport {
  const r = demandReportSchema.safeParse(body)
  if (!r.success) throw new BadRequestError(`invalid demand report: ${r.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  return r.data
}

const RENDITION_MARK = '#r:'
const READS = '#reads'

/** The counter key of a rendition's plays (its slices: this + `#slice`). */
export function renditionKey(contentId: string, rid: string): string {
  return `${contentId}${RENDITION_MARK}${rid}`
}

/** What GET /v1/trending?positions=1 answers per rendition of an adaptive title. */
export interface RenditionDemand {
  id: string
  /** sessions that read it, in the window */
  plays: number
  /** chunk reads over 24 h (its share of the title's reads weighs its chunks in an edge's prefill) */
  reads: number
}

/** Which slice of a title chunk `index` of `chunks` falls in. */
export function sliceOf(index: number, chunks: number): number {
  return Math.min(SLICES - 1, Math.floor((index / Math.max(1, chunks)) * SLICES))
}

export class Trending {
  readonly own: WindowCounter
  readonly merged: MergedCounts
  private readonly db: Database.Database
  private readonly sPut: Database.Statement<[string, string, number]>

  constructor(file: string, readonly routerId: string) {
    this.db = openDatabase(file, 'the trending store', [
      'CREATE TABLE IF NOT EXISTS counters (router_id TEXT PRIMARY KEY, state TEXT NOT NULL, at INTEGER NOT NULL)'])
    this.sPut = this.db.prepare('INSERT OR REPLACE INTO counters (router_id, state, at) VALUES (?, ?, ?)')
    const rows = this.db.prepare<[], { router_id: string; state: string; at: number }>('SELECT router_id, state, at FROM counters').all()
    const mine = rows.find(r => r.router_id === routerId)
    this.own = mine ? WindowCounter.restore(JSON.parse(mine.state) as Record<string, Ring[]>) : new WindowCounter()
    this.merged = new MergedCounts(routerId, this.own)
    for (const r of rows) if (r.router_id !== routerId) this.merged.mergePeer(r.router_id, r.at, JSON.parse(r.state) as Record<string, Ring[]>)
  }

  record(report: DemandReport, now: number): void {
    for (const t of report.titles) {
      if (t.plays > 0) this.own.add(t.contentId, t.plays, now)
      t.slices?.forEach((n, i) => { if (n > 0) this.own.add(`${t.contentId}#${i}`, n, now) })
      for (const r of t.renditions ?? []) {
        const key = renditionKey(t.contentId, r.id)
        if (r.plays > 0) this.own.add(key, r.plays, now)
        const reads = r.slices?.reduce((a, b) => a + b, 0) ?? 0
        if (reads > 0) this.own.add(`${key}${READS}`, reads, now)
      }
    }
  }

  /** A peer router's state, as its GET /v1/trending/state gave it. Kept in SQLite too. */
  mergePeer(routerId: string, at: number, state: Record<string, Ring[]>): void {
    this.merged.mergePeer(routerId, at, state)
    if (routerId !== this.routerId) this.sPut.run(routerId, JSON.stringify(state), at)
  }

  plays(contentId: string, window: WindowName, now: number): number {
    return this.merged.total(contentId, window, now)
  }

  /** Share of a title's chunk reads in each slice over 24 h, or null when nothing is known. */
  positions(contentId: string, now: number): number[] | null {
    const counts = Array.from({ length: SLICES }, (_, i) => this.merged.total(`${contentId}#${i}`, '24h', now))
    const sum = counts.reduce((a, b) => a + b, 0)
    return sum > 0 ? counts.map(c => c / sum) : null
  }

  /**
   * Per rendition of each of `ids` that has counts: plays in the window, and
   * reads over 24 h. One pass over the keys, however many titles are asked.
   */
  renditions(ids: ReadonlySet<string>, window: WindowName, now: number): Map<string, RenditionDemand[]> {
    const found = new Map<string, Set<string>>()
    for (const k of this.merged.keys()) {
      const at = k.indexOf(RENDITION_MARK)
      if (at <= 0 || !ids.has(k.slice(0, at))) continue
      const rest = k.slice(at + RENDITION_MARK.length)
      const hash = rest.indexOf('#')
      const id = k.slice(0, at)
      let set = found.get(id)
      if (set === undefined) found.set(id, set = new Set())
      set.add(hash < 0 ? rest : rest.slice(0, hash))
    }
    const out = new Map<string, RenditionDemand[]>()
    for (const [id, rids] of found) {
      const list: RenditionDemand[] = []
      for (const rid of [...rids].sort()) {
        const key = renditionKey(id, rid)
        const reads = this.merged.total(`${key}${READS}`, '24h', now)
        const plays = this.merged.total(key, window, now)
        if (plays > 0 || reads > 0) list.push({ id: rid, plays, reads })
      }
      if (list.length > 0) out.set(id, list)
    }
    return out
  }

  /**
   * Every title's plays in the window (> 0), unsorted: what steering's owner
   * counts are drawn from (hot-titles.ts). Skips the slice and rendition keys
   * without building a set of every key, which top() does: 20,000 titles have
   * 420,000 keys.
   */
  titlePlays(window: WindowName, now: number): { contentId: string; plays: number }[] {
    const out: { contentId: string; plays: number }[] = []
    for (const k of this.merged.eachKey()) {
      if (k.includes('#')) continue
      const plays = this.merged.total(k, window, now)
      if (plays > 0) out.push({ contentId: k, plays })
    }
    return out
  }

  /** Titles by plays in the window, most first. */
  top(window: WindowName, now: number, limit: number, filter: (contentId: string) => boolean = () => true): { contentId: string; plays: number }[] {
    const out: { contentId: string; plays: number }[] = []
    for (const k of this.merged.keys()) {
      if (k.includes('#') || !filter(k)) continue
      const plays = this.merged.total(k, window, now)
      if (plays > 0) out.push({ contentId: k, plays })
    }
    return out.sort((a, b) => b.plays - a.plays || (a.contentId < b.contentId ? -1 : 1)).slice(0, limit)
  }

  snapshot(now: number): void {
    this.own.prune(now)
    this.sPut.run(this.routerId, JSON.stringify(this.own.snapshot()), now)
  }

  close(now: number): void {
    if (!this.db.open) return
    this.snapshot(now)
    this.db.close()
  }
}
