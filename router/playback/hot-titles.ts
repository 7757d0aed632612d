import type { WindowName } from './window-counter.js'

/**
 * How many owners a title has at a site, from its demand (issue 17,
 * docs/steering.md, "Hot titles").
 *
 * A cold title has one owner: the first edge of its affinity order
 * (lib/affinity.ts). A title with a share `s` of all plays (over
 * router.steeringHotWindow, as trending counts them from the edges' demand
 * reports) would put `s` of a site's traffic on that one edge, against an
 * average of 1/N per edge for N edges. Spread over its first k owners, and
 * with the rest of the traffic (1 − s, the cold titles) spread evenly by the
 * hashing, an owner carries s/k + (1 − s)/N; keeping that at or under c/N
 * (router.steeringLoadFactor, the bound of "consistent hashing with bounded
 * loads", Mirrokni et al. 2018) needs
 *
 *     k = ceil(s·N / (c − 1 + s)),   at least 1, at most N.
 *
 * A title with fewer than router.steeringHotMinPlays plays in the window is
 * cold whatever its share (a quiet site's only title is not hot). Trending is
 * global, not per site: the rule assumes sites see similar mixes of demand,
 * and the per-play load bound (steering.ts) catches a site where that is wrong.
 *
 * The shares are taken again every 10 s, or a second after a demand report,
 * on the first question after that: one pass over trending's title keys
 * (20,000 titles, 420,000 keys: 140-600 ms on this 2-core machine at load
 * average 14-17, top()'s set of every key made it 900-1000 ms; see
 * Trending.titlePlays). It runs on the request path: @TODO(steering) a timer
 * or a worker when catalogs grow past that.
 */
export interface DemandSource {
  /** every title's plays in the window, in any order (Trending.titlePlays) */
  titlePlays(window: WindowName, now: number): { contentId: string; plays: number }[]
}

/** Titles whose share a refresh keeps (the rest are cold): what a heartbeat's `hot` list is drawn from. */
export const HOT_LIMIT = 300

/** Shares are taken again this often: the 5 min window moves in 10 s buckets, and edges report every 10 s. */
const REFRESH_MS = 10_000
/** ...and no more often than this after a demand report (`invalidate`), however many edges report. */
const MIN_REFRESH_MS = 1000

export class HotTitles {
  private shares = new Map<string, number>()
  private at = -Infinity

  constructor(private readonly demand: DemandSource, private readonly o: { window: WindowName; minPlays: number; loadFactor: number },
    private readonly onRefresh?: (hot: number) => void) {}

  /** The owner count of a title with share `s` at a site of `n` edges. */
  static owners(s: number, n: number, c: number): number {
    if (!(s > 0) || n <= 1) return 1
    return Math.min(n, Math.max(1, Math.ceil((s * n) / (c - 1 + s))))
  }

  private stale = false

  /** A demand report came in: the next question takes the shares again (at most once a second). */
  invalidate(): void {
    this.stale = true
  }

  private refresh(now: number): void {
    const age = now - this.at
    if (age >= 0 && age < (this.stale ? MIN_REFRESH_MS : REFRESH_MS)) return
    this.at = now
    this.stale = false
    const all = this.demand.titlePlays(this.o.window, now)
    const total = all.reduce((a, t) => a + t.plays, 0)
    all.sort((a, b) => b.plays - a.plays || (a.contentId < b.contentId ? -1 : 1))
    const shares = new Map<string, number>()
    for (const t of all.slice(0, HOT_LIMIT)) if (t.plays >= this.o.minPlays) shares.set(t.contentId, t.plays / total)
    this.shares = shares
    this.onRefresh?.(shares.size)
  }

  /** The title's owner count at a site of `n` edges. */
  ownersOf(contentId: string, n: number, now: number): number {
    this.refresh(now)
    return HotTitles.owners(this.shares.get(contentId) ?? 0, n, this.o.loadFactor)
  }

  /** Titles with more than one owner at a site of `n` edges, most demanded first. */
  hot(n: number, now: number): { contentId: string; owners: number }[] {
    this.refresh(now)
    const out: { contentId: string; owners: number }[] = []
    for (const [contentId, s] of this.shares) {
      const owners = HotTitles.owners(s, n, this.o.loadFactor)
      if (owners > 1) out.push({ contentId, owners })
    }
    return out
  }
}
