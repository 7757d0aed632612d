import { hash53, rankByAffinity } from '../../lib/affinity.js'
import type { SteeringChoice } from '../../lib/metrics.js'
import type { RankedEdge } from './edge-registry.js'
import type { HotTitles } from './hot-titles.js'

/**
 * The order of the edges in a /v1/play answer (issue 17, docs/steering.md).
 *
 * router.steering=load: the registry's order, local edges first, then the
 * less loaded (what every answer was before issue 17, kept to compare).
 *
 * router.steering=affinity, in this order:
 * 1. The client's local edges (its network or region, edge-registry.ts) are
 *    ranked for the title by weighted rendezvous hashing (lib/affinity.ts,
 *    weight = capacityBytes): the title's owner order. Every viewer of the
 *    site gets the same order, so one edge caches the title, not all of them.
 * 2. Its owner count k (hot-titles.ts: 1 for a cold title, more with demand).
 *    A viewer starts at owner hash(viewer, title) mod k, so a hot title's
 *    viewers spread evenly over its first k owners and each viewer keeps
 *    its own.
 * 3. The bound (consistent hashing with bounded loads, Mirrokni et al. 2018):
 *    an owner whose recent load, plus this play, is above
 *    ceil(c × (the local edges' total + 1) / N) is passed over for the
 *    next one in the title's order (the first k from the viewer's start,
 *    then owner k+1, k+2, ...), as is one whose heartbeat says it is
 *    saturated (load ≥ 1). "Recent load" is the plays this router steered
 *    to each edge, decayed with router.steeringLoadHalfLifeMs: it moves with
 *    every answer, where a heartbeat's load is seconds old. If every local
 *    edge is passed over, the least loaded comes first.
 * 4. The answer: the chosen edge, the title's other local owners in its
 *    order (a player's failover goes where the title is most likely cached),
 *    then the edges that are not local (less loaded first), then the origin.
 *
 * No local edge: the registry's order, as with load.
 *
 * A title the bound sent past its k owners is remembered for the site
 * (`spilled`, the load's half-life) with the depth it went to: the
 * heartbeat's `hot` list carries it next to the demand's owner counts.
 *
 * Several routers: each bounds the plays it steers itself; behind a load
 * balancer each sees a like share of plays, so each keeps its share under the
 * bound. One process, synchronous: no interleaving between the load read and
 * its update.
 */
export interface SteeringOptions {
  policy: 'affinity' | 'load'
  /** c, at least 1 */
  loadFactor: number
  halfLifeMs: number
}

export interface Steered {
  edges: RankedEdge[]
  choice: SteeringChoice
}

/** Plays steered to each edge, decayed exponentially: a count that forgets with a half-life. */
export class RecentLoad {
  private readonly counts = new Map<string, { v: number; at: number }>()

  constructor(private readonly halfLifeMs: number) {}

  get(id: string, now: number): number {
    const c = this.counts.get(id)
    return c === undefined ? 0 : c.v * 2 ** (-Math.max(0, now - c.at) / this.halfLifeMs)
  }

  add(id: string, now: number, n = 1): void {
    this.counts.set(id, { v: this.get(id, now) + n, at: now })
    // edges come and go: forget the ones whose count has decayed to nothing (bounded by the registry's edges meanwhile)
    if (this.counts.size > 1024 && this.counts.size % 256 === 0)
      for (const [k] of this.counts) if (this.get(k, now) < 0.01) this.counts.delete(k)
  }
}

/** Titles the bound spilled past their owners, remembered per site: at most this many, each for the load's half-life. */
const MAX_SPILLS = 1000

export class Steering {
  readonly load: RecentLoad
  /** `site \0 contentId` → how deep in its owner order the bound sent a viewer, and when (insertion order = age) */
  private readonly spills = new Map<string, { owners: number; at: number }>()

  constructor(readonly o: SteeringOptions, private readonly hot: Pick<HotTitles, 'ownersOf'> | undefined) {
    this.load = new RecentLoad(o.halfLifeMs)
  }

  /**
   * A title the bound sent past its k owners has, for now, that many owners
   * at the site: the heartbeat's `hot` list says so (with the demand's), so
   * the edges agree. Only when the local edges are one site, and only for the
   * load's half-life.
   */
  private spill(local: readonly RankedEdge[], contentId: string, owners: number, now: number): void {
    const site = local[0]!.site
    if (site === undefined || local.some(e => e.site !== site)) return
    const key = `${site}\u0000${contentId}`
    const had = this.spills.get(key)
    this.spills.delete(key)
    this.spills.set(key, { owners: Math.max(owners, had && now - had.at < this.o.halfLifeMs ? had.owners : 0), at: now })
    if (this.spills.size > MAX_SPILLS) this.spills.delete(this.spills.keys().next().value!)
  }

  /** The titles of `site` the bound spilled lately, with their owner counts. */
  spilled(site: string, now: number): { contentId: string; owners: number }[] {
    const out: { contentId: string; owners: number }[] = []
    const prefix = `${site}\u0000`
    for (const [key, v] of this.spills) {
      if (now - v.at >= this.o.halfLifeMs) this.spills.delete(key)
      else if (key.startsWith(prefix)) out.push({ contentId: key.slice(prefix.length), owners: v.owners })
    }
    return out
  }

  /** `ranked`: every live edge in the registry's order (local first, less loaded first). Records the play against the edge chosen. */
  order(contentId: string, viewerId: string, ranked: readonly RankedEdge[], now: number): Steered {
    if (this.o.policy === 'load') return { edges: [...ranked], choice: 'load' }
    const local = ranked.filter(e => e.local)
    if (local.length === 0) return { edges: [...ranked], choice: 'no_local' }
    const owners = rankByAffinity(contentId, local)
    const n = owners.length
    const k = this.hot?.ownersOf(contentId, n, now) ?? 1
    const start = k > 1 ? hash53(`${viewerId}\u0000${contentId}`) % k : 0
    const loads = owners.map(e => this.load.get(e.id, now))
    const bound = Math.ceil((this.o.loadFactor * (loads.reduce((a, b) => a + b, 0) + 1)) / n)
    let chosen = -1
    let skipped = false
    for (let step = 0; step < n; step++) {
      // the viewer's start among the first k, round them, then the title's later owners in order
      const i = step < k ? (start + step) % k : step
      if (loads[i]! + 1 <= bound && owners[i]!.load < 1) {
        chosen = i
        break
      }
      skipped = true
    }
    if (chosen < 0) chosen = loads.indexOf(Math.min(...loads))
    const first = owners[chosen]!
    this.load.add(first.id, now)
    if (chosen >= k) this.spill(local, contentId, chosen + 1, now)
    return {
      edges: [first, ...owners.filter(e => e !== first), ...ranked.filter(e => !e.local)],
      choice: skipped ? 'over_bound' : chosen === 0 ? 'owner' : 'hot_owner',
    }
  }
}
