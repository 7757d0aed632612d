import type { Deployment } from './deployment.js'
import type { Failure, Model } from './engine.js'

/**
 * What a model run counts, in chunks (all chunks are one size, so a share of
 * chunks is a share of bytes): totals per site and per edge after the
 * warm-up, and a time series of windows (every `windowMs` of simulated time,
 * warm-up included) that failures are judged on. Also, at every window's
 * end, the spread of active sessions over a site's live edges (max over
 * mean, weighted by capacity): the load a router sees at that instant.
 */
export interface FailureEvent {
  failure: Failure
  atMs: number
  /** sessions on the failed edge(s) at the time: steered again */
  movedSessions: number
  /** affinity keys whose first owner was the failed edge (null: load steering, where titles have no owner, or a site) */
  keysMoved: number | null
  /** the site whose hit ratio is judged: the edge's own, or the one that takes a failed site's viewers (-1: none) */
  site: number
}

export interface Window {
  req: Float64Array
  origin: Float64Array
  served: Float64Array
}

export class Tally {
  readonly req: Float64Array
  readonly hits: Float64Array
  readonly origin: Float64Array
  readonly peer: Float64Array
  readonly served: Float64Array
  readonly peerOut: Float64Array
  /** per site, the largest sampled max/mean of active sessions (0 when never sampled) */
  readonly peakActiveSpread: Float64Array
  readonly windows: Window[] = []
  readonly failures: FailureEvent[] = []
  /** reads no site could serve (every site failed) */
  darkReads = 0
  prefillChunks = 0
  /** all reads, warm-up included */
  reads = 0
  lastMs = 0
  /** the time of the last arrival: afterwards the active sessions only drain */
  arrivalsEndMs = Infinity
  private cur = -1

  constructor(readonly dep: Deployment, readonly edgeSite: Int32Array, readonly windowMs: number, readonly warmupMs: number) {
    const s = dep.sites.length
    const e = edgeSite.length
    this.req = new Float64Array(s); this.hits = new Float64Array(s); this.origin = new Float64Array(s); this.peer = new Float64Array(s)
    this.served = new Float64Array(e); this.peerOut = new Float64Array(e); this.peakActiveSpread = new Float64Array(s)
  }

  /** Moves the clock to t: closes the windows that ended before it. */
  at(t: number, m: Model): void {
    this.lastMs = t
    const w = Math.floor(t / this.windowMs)
    while (this.cur < w) {
      if (this.cur >= 0 && (this.cur + 1) * this.windowMs > this.warmupMs) this.sample(m)
      this.cur++
      this.windows.push({ req: new Float64Array(this.req.length), origin: new Float64Array(this.req.length), served: new Float64Array(this.served.length) })
    }
  }

  read(t: number, site: number, edge: number, hit: boolean, origin: boolean, peer: number): void {
    this.reads++
    const w = this.windows[this.cur]!
    w.req[site]++
    w.served[edge]++
    if (origin) w.origin[site]++
    if (t < this.warmupMs) return
    this.req[site]++
    this.served[edge]++
    if (hit) this.hits[site]++
    if (origin) this.origin[site]++
    if (peer >= 0) { this.peer[site]++; this.peerOut[peer]++ }
  }

  dark(t: number): void {
    this.reads++
    if (t >= this.warmupMs) this.darkReads++
  }

  failed(failure: Failure, atMs: number, movedSessions: number, keysMoved: number | null, site: number): void {
    this.failures.push({ failure, atMs, movedSessions, keysMoved, site })
  }

  /**
   * The instant spread of active sessions per site, while sessions still
   * arrive (the tail after the last arrival only drains, and nothing steers
   * it) and where a site has at least 8 per live edge (fewer is noise).
   */
  private sample(m: Model): void {
    if (!m.arriving) return
    for (let s = 0; s < this.req.length; s++) {
      const total = m.siteActive[s]!
      const first = m.firstEdge(s)
      const n = this.dep.sites[s]!.edges.length
      let live = 0
      for (let e = first; e < first + n; e++) if (m.alive[e]) live++
      if (live === 0 || total < 8 * live) continue
      let worst = 0
      for (let e = first; e < first + n; e++) {
        if (!m.alive[e]) continue
        const share = (total * m.weight[e]!) / m.siteWeight[s]!
        worst = Math.max(worst, m.active[e]! / share)
      }
      if (worst > this.peakActiveSpread[s]!) this.peakActiveSpread[s] = worst
    }
  }
}
