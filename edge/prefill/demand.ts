import { LRUCache } from 'lru-cache'
import { request } from 'undici'
import type { Logger } from '../../lib/logger.js'

/**
 * What players watch here, counted for the router's trending (router/playback/trending.ts):
 * per title, plays (sessions) and chunk reads by position slice (20 slices of
 * the title, 0 = opening). A play is the first request of a session: of a play
 * token that verified (edge/serve/play-auth.ts `demandSession`: a made-up string
 * would let one client make plays), or else of a client address and title,
 * within `sessionTtlMs`.
 *
 * An adaptive title is also counted per rendition (issue 15): a rendition's
 * plays are the sessions that read it (a viewer who switches rung counts a
 * play of each rung it read), and its reads by slice of its own file. The
 * title's own slices count its video renditions' reads, so they still say
 * where in the title people watch (an audio file of one chunk would put every
 * read in the opening). Prefill weighs each rendition by its share of reads
 * (edge/prefill/prefill-plan.ts): the rungs viewers watch, not every rung.
 *
 * Counting costs one LRU lookup (two for a rendition) and a few integer adds
 * per request. Counts accumulate until `take()` hands them to the reporter,
 * which gives them back (`restore`) if the router could not be reached, so a
 * router outage loses nothing. At most MAX_TITLES titles are held between
 * reports (the report schema's limit); beyond that new titles wait for the
 * next report. A title has at most 16 renditions (the manifest's limit), and
 * only renditions of its manifest are counted.
 */
export const SLICES = 20
const MAX_TITLES = 10_000

export interface FileCounts {
  /** the rendition id */
  id: string
  plays: number
  slices: number[]
}

export interface TitleCounts {
  contentId: string
  plays: number
  slices: number[]
  /** per rendition, for an adaptive title; absent for a single-file title (the report's shape before issue 15) */
  renditions?: FileCounts[]
}

interface Entry extends TitleCounts {
  files: Map<string, FileCounts> | undefined
}

export class DemandRecorder {
  private titles = new Map<string, Entry>()
  /** the last report's plays by title (what `take` handed over), for the status console's top titles */
  private reported = new Map<string, number>()
  private readonly sessions: LRUCache<string, true>

  constructor(sessionTtlMs: number) {
    this.sessions = new LRUCache({ max: 100_000, ttl: sessionTtlMs })
  }

  private entry(contentId: string): Entry | undefined {
    let t = this.titles.get(contentId)
    if (t === undefined) {
      if (this.titles.size >= MAX_TITLES) return undefined
      t = { contentId, plays: 0, slices: new Array<number>(SLICES).fill(0), files: undefined }
      this.titles.set(contentId, t)
    }
    return t
  }

  private file(t: Entry, rid: string): FileCounts {
    t.files ??= new Map()
    let f = t.files.get(rid)
    if (f === undefined) t.files.set(rid, f = { id: rid, plays: 0, slices: new Array<number>(SLICES).fill(0) })
    return f
  }

  /** A player request (of rendition `rid`, for an adaptive title): counts a play if `session` is new (to the rendition). */
  request(session: string, contentId: string, rid?: string): void {
    if (rid !== undefined) {
      const key = `${session}\n${rid}`
      if (!this.sessions.has(key)) {
        this.sessions.set(key, true)
        const t = this.entry(contentId)
        if (t) this.file(t, rid).plays++
      }
    }
    if (this.sessions.has(session)) return
    this.sessions.set(session, true)
    const t = this.entry(contentId)
    if (t) t.plays++
  }

  /**
   * Reads of chunks first..last of a file of `chunks` chunks: the title's own,
   * or rendition `rid` of kind `kind` (only video reads count in the title's slices).
   */
  chunks(contentId: string, first: number, last: number, chunks: number, rid?: string, kind?: 'title' | 'video' | 'audio'): void {
    const t = this.entry(contentId)
    if (!t || chunks <= 0) return
    const f = rid === undefined ? undefined : this.file(t, rid)
    const title = rid === undefined || kind !== 'audio'
    for (let i = first; i <= last; i++) {
      const s = Math.min(SLICES - 1, Math.floor((i / chunks) * SLICES))
      if (title) t.slices[s]!++
      if (f) f.slices[s]!++
    }
  }

  take(): TitleCounts[] {
    const out: TitleCounts[] = []
    for (const t of this.titles.values()) {
      out.push(t.files === undefined ? { contentId: t.contentId, plays: t.plays, slices: t.slices }
        : { contentId: t.contentId, plays: t.plays, slices: t.slices, renditions: [...t.files.values()] })
    }
    this.titles = new Map()
    this.reported = new Map(out.map(t => [t.contentId, t.plays]))
    return out
  }

  /**
   * The `n` titles with the most plays since the report before last (the
   * counts being gathered now, plus the last report's): what the status
   * console shows as top titles. Without reports (no edge credential), plays since start.
   */
  top(n: number): { contentId: string; plays: number }[] {
    const plays = new Map(this.reported)
    for (const t of this.titles.values()) plays.set(t.contentId, (plays.get(t.contentId) ?? 0) + t.plays)
    return [...plays].map(([contentId, p]) => ({ contentId, plays: p })).sort((a, b) => b.plays - a.plays || (a.contentId < b.contentId ? -1 : 1)).slice(0, n)
  }

  restore(counts: TitleCounts[]): void {
    for (const c of counts) {
      const t = this.entry(c.contentId)
      if (!t) continue
      t.plays += c.plays
      c.slices.forEach((n, i) => { t.slices[i]! += n })
      for (const r of c.renditions ?? []) {
        const f = this.file(t, r.id)
        f.plays += r.plays
        r.slices.forEach((n, i) => { f.slices[i]! += n })
      }
    }
  }
}

/** The router refused the body (400): sending it again as it is will not help. */
class RefusedError extends Error {}

function withoutSite(hb: Heartbeat): Heartbeat {
  const { site: _s, capacityBytes: _c, ...rest } = hb
  return rest
}

function withoutRenditions(t: TitleCounts): TitleCounts {
  return { contentId: t.contentId, plays: t.plays, slices: t.slices }
}

export interface Heartbeat {
  id: string
  url: string
  networks: string[]
  regions: string[]
  healthy: boolean
  load: number
  freeBytes: number
  /** issue 17: the edge's site (edge.site), when it has one */
  site?: string
  /** issue 17: RAM + disk tier bytes, the edge's affinity weight at the router */
  capacityBytes?: number
}

/**
 * Heartbeats and demand reports to the router, each on its own interval,
 * authenticated with the edge credential (REELCDN_EDGE_TOKEN). A failed
 * heartbeat is only logged (the next one follows); a failed report's counts
 * go back to the recorder.
 */
export class EdgeReporter {
  private timers: NodeJS.Timeout[] = []
  private inflight = new Set<Promise<unknown>>()
  /** last outcome, for GET /v1/prefill's neighbour, tests and logs */
  heartbeats = { ok: 0, failed: 0 }
  reports = { ok: 0, failed: 0 }

  constructor(private readonly o: {
    routerUrl: string
    token: string | undefined
    heartbeatMs: number
    reportMs: number
    heartbeat: () => Heartbeat
    recorder: DemandRecorder
    logger: Logger
    /** the router's answer to each accepted heartbeat (issue 17: the site's members and hot titles; {id, accepted} from an older router) */
    answered?: (answer: unknown) => void
  }) {}

  private started = false

  start(): void {
    this.started = true
    if (this.o.heartbeatMs > 0) {
      void this.track(this.sendHeartbeat())
      this.timers.push(setInterval(() => void this.track(this.sendHeartbeat()), this.o.heartbeatMs))
    }
    if (this.o.reportMs > 0) this.timers.push(setInterval(() => void this.track(this.sendReport()), this.o.reportMs))
    for (const t of this.timers) t.unref()
  }

  /** Reports to another router from the next heartbeat on (a config reload). */
  retarget(routerUrl: string): void {
    this.o.routerUrl = routerUrl
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p)
    void p.finally(() => this.inflight.delete(p))
    return p
  }

  private async post(path: string, body: unknown): Promise<unknown> {
    const res = await request(`${this.o.routerUrl.replace(/\/+$/, '')}${path}`, {
      method: 'POST', body: JSON.stringify(body), headersTimeout: 5000, bodyTimeout: 5000,
      headers: { 'content-type': 'application/json', ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) },
    })
    const text = await res.body.text()
    if (res.statusCode === 400) throw new RefusedError(`${path} answered 400: ${text.slice(0, 500)}`)
    if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}: ${text.slice(0, 200)}`)
    try {
      return JSON.parse(text) as unknown
    } catch {
      return undefined
    }
  }

  /** the router refused site and capacityBytes (one from before issue 17): heartbeats go without them */
  private legacyHeartbeat = false

  async sendHeartbeat(): Promise<boolean> {
    try {
      const hb = { ...this.o.heartbeat(), healthy: this.healthy }
      let answer: unknown
      try {
        answer = await this.post('/v1/edges/heartbeat', this.legacyHeartbeat ? withoutSite(hb) : hb)
      } catch (err) {
        // a router older than issue 17 refuses the fields its strict schema does not know: it still steers to this edge without them
        if (this.legacyHeartbeat || !(err instanceof RefusedError) || !/site|capacityBytes/.test(err.message) || (hb.site === undefined && hb.capacityBytes === undefined)) throw err
        this.legacyHeartbeat = true
        this.o.logger.warn('the router refuses site and capacity in heartbeats (older than issue 17): sending them without')
        answer = await this.post('/v1/edges/heartbeat', withoutSite(hb))
      }
      this.heartbeats.ok++
      this.o.answered?.(answer)
      return true
    } catch (err) {
      this.heartbeats.failed++
      this.o.logger.warn({ err: (err as Error).message }, 'heartbeat to the router failed')
      return false
    }
  }

  /** the router refused per-rendition counts (one from before issue 15): reports go without them */
  private legacy = false

  async sendReport(): Promise<boolean> {
    const titles = this.o.recorder.take()
    if (titles.length === 0) return true
    try {
      try {
        await this.post('/v1/demand', { edgeId: this.o.heartbeat().id, titles: this.legacy ? titles.map(withoutRenditions) : titles })
      } catch (err) {
        // a router older than issue 15 takes the report without the renditions its schema does not know
        if (this.legacy || !(err instanceof RefusedError) || !/renditions/.test(err.message) || !titles.some(t => t.renditions)) throw err
        this.legacy = true
        this.o.logger.warn('the router refuses per-rendition demand counts (older than issue 15): reporting per title only')
        await this.post('/v1/demand', { edgeId: this.o.heartbeat().id, titles: titles.map(withoutRenditions) })
      }
      this.reports.ok++
      return true
    } catch (err) {
      this.o.recorder.restore(titles)
      this.reports.failed++
      this.o.logger.warn({ err: (err as Error).message }, 'demand report to the router failed; counts kept for the next one')
      return false
    }
  }

  /** false from close() on: the farewell heartbeat takes the edge out of steering at once */
  healthy = true

  /** Stops the timers and says goodbye (an unhealthy heartbeat). Call `flush()` once players have drained. */
  /** `farewell` false: no last heartbeat marking the edge down (an upgrade: the next worker heartbeats at once under the same id). */
  async close(farewell = true): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    await Promise.allSettled([...this.inflight])
    this.healthy = false
    if (farewell && this.started && this.o.heartbeatMs > 0) await this.sendHeartbeat()
  }

  /** The last demand report, with what the drain counted. */
  async flush(): Promise<void> {
    if (this.started && this.o.reportMs > 0) await this.sendReport()
  }
}
