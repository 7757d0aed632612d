import { ConfigError } from '../../lib/errors.js'
import { POLICIES, type Simulated } from '../loadtest/simulate.js'
import { chunkKey } from '../loadtest/trace.js'
import type { Deployment } from './deployment.js'
import { TimeHeap } from './heap.js'
import { AffinityKeys, OwnerTable } from './owners.js'
import { prefill } from './prefill.js'
import type { Session } from './sessions.js'
import { Tally } from './tally.js'

/**
 * The scale model's engine: a deployment's edges, each running an eviction
 * policy of the edge (the classes of edge/policy/, through simulate.ts's
 * factories, sized in chunks), fed chunk reads in time order.
 *
 * Order of events. Sessions arrive in time order from a stream; each active
 * session sits once in a heap at the time of its next read, one read per
 * `chunkMs`. Before a read or an arrival at time t, failures due by t apply.
 *
 * Steering (which edge of the viewer's site serves a session):
 * - `load`: the live edge with the fewest active sessions per unit of
 *   capacity (ties: the lower index), chosen when the session starts; today's
 *   router ranking.
 * - `affinity`: the key's first live owner (owners.ts); with chunk-range
 *   keys the session moves to the next range's owner as it plays.
 * - `affinity+hot`: consistent hashing with bounded loads (Mirrokni, Thorup
 *   & Zadimoghaddam 2018), weighted: walk the key's owners in order and take
 *   the first live edge e with `active(e) + 1 <= ceil(c × (A + 1) × w_e / W)`,
 *   A the site's active sessions, W its live edges' weight, c the bound
 *   (1.25). A cold title stays on its first owner; a title whose demand
 *   exceeds one edge's share spills to its second owner, then its third:
 *   the number of owners grows with demand, and no edge takes a session
 *   above the bound. (If none qualifies, which only rounding allows, `load`.)
 * A session is steered again when its edge or site fails, and (affinity) when
 * its key changes. A failed site's viewers go to the next live site.
 *
 * A miss is filled from the origin, or with `peerFill` by the chunk's first
 * live owner at the site when that is another edge: a peer hit there costs
 * peer bytes only, a peer miss costs one origin fetch that both keep.
 */
export const STEERINGS = ['load', 'affinity', 'affinity+hot'] as const
export type Steering = typeof STEERINGS[number]

export interface Failure {
  kind: 'edge' | 'site'
  site: number
  /** local index of the edge in its site (kind edge) */
  edge: number
  atMs: number
  label: string
}

export interface ModelOptions {
  steering: Steering
  /** chunks per affinity key; 0 keys by title */
  rangeChunks: number
  /** c of the bounded-load rule */
  bound: number
  policy: string
  peerFill: boolean
  /** share of each edge's capacity filled before the run (0: none) */
  prefill: number
  prefillSiteAware: boolean
  failures: Failure[]
  chunkMs: number
  windowMs: number
  /** reads before this time warm the caches and are not counted in the totals */
  warmupMs: number
  onProgress?: (sessions: number, tally: Tally) => void
  /** every read, for tests: the time, title, chunk and serving edge (global index) */
  onRead?: (t: number, title: number, index: number, edge: number) => void
}

export class Model {
  readonly edgeCount: number
  readonly edgeSite: Int32Array
  readonly alive: Uint8Array
  readonly siteAlive: Uint8Array
  readonly active: Int32Array
  readonly siteActive: Float64Array
  readonly siteWeight: Float64Array
  readonly weight: Float64Array
  readonly caches: Simulated[]
  readonly keys: AffinityKeys
  readonly owners: OwnerTable | null
  readonly tally: Tally
  private readonly chunkBase: Int32Array
  private readonly chunkKeys: string[]
  private readonly titleNames: string[]
  private readonly heap = new TimeHeap()
  /** the global index of each site's first edge (edges are numbered site by site) */
  private readonly siteFirst: Int32Array
  // sessions by slot
  private sSite = new Int32Array(0); private sServ = new Int32Array(0); private sTitle = new Int32Array(0)
  private sNext = new Int32Array(0); private sEnd = new Int32Array(0); private sEdge = new Int32Array(0)
  private sKey = new Int32Array(0); private sId = new Int32Array(0)
  private free: number[] = []
  private failuresDone = 0
  private readonly failures: Failure[]
  sessions = 0
  /** false once the last session has arrived: the tail only drains */
  arriving = true

  constructor(readonly dep: Deployment, readonly o: ModelOptions, onOwners?: (done: number, total: number) => void) {
    const make = POLICIES[o.policy]
    if (!make) throw new ConfigError(`unknown eviction policy ${JSON.stringify(o.policy)}; known: ${Object.keys(POLICIES).join(', ')}`)
    if (!STEERINGS.includes(o.steering)) throw new ConfigError(`unknown steering ${JSON.stringify(o.steering)}; known: ${STEERINGS.join(', ')}`)
    if (!(o.bound >= 1) || !Number.isFinite(o.bound)) throw new ConfigError(`expected the load bound to be a number of at least 1 (× the mean), got ${o.bound}`)
    const edges = dep.sites.flatMap((s, i) => s.edges.map(e => ({ ...e, site: i })))
    this.edgeCount = edges.length
    this.siteFirst = new Int32Array(dep.sites.length + 1)
    dep.sites.forEach((s, i) => { this.siteFirst[i + 1] = this.siteFirst[i]! + s.edges.length })
    this.edgeSite = Int32Array.from(edges.map(e => e.site))
    this.weight = Float64Array.from(edges.map(e => e.weight))
    this.alive = new Uint8Array(edges.length).fill(1)
    this.siteAlive = new Uint8Array(dep.sites.length).fill(1)
    this.active = new Int32Array(edges.length)
    this.siteActive = new Float64Array(dep.sites.length)
    this.siteWeight = new Float64Array(dep.sites.length)
    for (const e of edges) this.siteWeight[e.site] += e.weight
    this.caches = edges.map(e => make(e.capacityChunks))
    this.keys = new AffinityKeys(dep.titles, o.rangeChunks)
    const needOwners = o.steering !== 'load' || o.peerFill || (o.prefill > 0 && o.prefillSiteAware) || o.failures.length > 0
    this.owners = needOwners ? new OwnerTable(dep, this.keys, d => onOwners?.(d, this.keys.count * dep.sites.length)) : null
    this.chunkBase = new Int32Array(dep.titles.length + 1)
    for (let t = 0; t < dep.titles.length; t++) this.chunkBase[t + 1] = this.chunkBase[t]! + dep.titles[t]!
    this.chunkKeys = new Array<string>(this.chunkBase[dep.titles.length]!)
    for (let t = 0; t < dep.titles.length; t++) for (let i = 0; i < dep.titles[t]!; i++) this.chunkKeys[this.chunkBase[t]! + i] = chunkKey(t, i)
    this.titleNames = Array.from(dep.titles, (_, t) => String(t))
    this.failures = [...o.failures].sort((a, b) => a.atMs - b.atMs)
    this.tally = new Tally(dep, this.edgeSite, o.windowMs, o.warmupMs)
    if (o.prefill > 0) this.tally.prefillChunks = prefill(this, o.prefill, o.prefillSiteAware)
    for (const f of this.failures)
      if (!(f.site >= 0 && f.site < dep.sites.length) || (f.kind === 'edge' && !(f.edge >= 0 && f.edge < dep.sites[f.site]!.edges.length)))
        throw new ConfigError(`failure ${f.label}: no such ${f.kind} in the deployment (${dep.sites.length} sites)`)
    this.free.push(this.grow(1024))
  }

  chunkKeyOf(title: number, index: number): string {
    return this.chunkKeys[this.chunkBase[title]! + index]!
  }

  run(source: Iterable<Session>): Tally {
    for (const s of source) {
      this.drain(s.at)
      this.apply(s.at)
      const slot = this.free.length > 0 ? this.free.pop()! : this.grow(this.sSite.length * 2)
      this.sSite[slot] = s.site; this.sServ[slot] = -1; this.sTitle[slot] = s.title
      this.sNext[slot] = s.first; this.sEnd[slot] = s.first + s.count; this.sEdge[slot] = -1; this.sId[slot] = this.sessions++
      this.heap.push(s.at, slot)
      if ((this.sessions & 0xfff) === 0) this.o.onProgress?.(this.sessions, this.tally)
    }
    this.arriving = false
    this.tally.arrivalsEndMs = this.tally.lastMs
    this.drain(Infinity)
    this.apply(Infinity)
    return this.tally
  }

  private drain(until: number): void {
    while (this.heap.size > 0 && this.heap.peekTime() <= until) {
      const t = this.heap.peekTime()
      this.apply(t)
      const slot = this.heap.pop()
      if (this.read(slot, t)) this.heap.push(t + this.o.chunkMs, slot)
      else this.free.push(slot)
    }
  }

  /** One chunk read; false when the session has ended. */
  private read(slot: number, t: number): boolean {
    this.tally.at(t, this)
    const title = this.sTitle[slot]!
    const index = this.sNext[slot]!
    const site = this.servingSite(this.sSite[slot]!)
    const key = this.keys.keyOf(title, index)
    let e = this.sEdge[slot]!
    if (site < 0) {
      if (e >= 0) this.detach(slot)
      this.tally.dark(t)
    } else {
      if (e < 0 || this.sServ[slot] !== site || (this.o.steering !== 'load' && key !== this.sKey[slot])) {
        if (e >= 0) this.detach(slot)
        e = this.steer(site, key)
        this.sEdge[slot] = e; this.sServ[slot] = site; this.sKey[slot] = key
        this.active[e]++; this.siteActive[site]++
      }
      this.access(e, site, title, index, t, slot)
    }
    if (++this.sNext[slot]! < this.sEnd[slot]!) return true
    if (this.sEdge[slot]! >= 0) this.detach(slot)
    return false
  }

  private access(e: number, site: number, title: number, index: number, t: number, slot: number): void {
    const k = this.chunkKeys[this.chunkBase[title]! + index]!
    const cache = this.caches[e]!
    this.o.onRead?.(t, title, index, e)
    cache.observe?.(String(this.sId[slot]), this.titleNames[title]!, index, t)
    if (cache.has(k)) {
      cache.hit(k)
      this.tally.read(t, site, e, true, false, -1)
      return
    }
    cache.miss(k)
    let origin = true
    let peer = -1
    if (this.o.peerFill) {
      peer = this.owners!.firstAlive(site, this.keys.keyOf(title, index), this.alive)
      if (peer === e) peer = -1
      if (peer >= 0) {
        const owner = this.caches[peer]!
        if (owner.has(k)) { owner.hit(k); origin = false } else { owner.miss(k); owner.insert(k, 1) }
      }
    }
    cache.insert(k, 1)
    this.tally.read(t, site, e, false, origin, peer)
  }

  private steer(site: number, key: number): number {
    if (this.o.steering === 'affinity') return this.owners!.firstAlive(site, key, this.alive)
    if (this.o.steering === 'affinity+hot') {
      const owners = this.owners!
      const n = owners.edges(site)
      const total = this.siteActive[site]! + 1
      const w = this.siteWeight[site]!
      for (let j = 0; j < n; j++) {
        const e = owners.owner(site, key, j)
        if (this.alive[e] && this.active[e]! + 1 <= Math.ceil((this.o.bound * total * this.weight[e]!) / w)) return e
      }
    }
    let best = -1
    let bestLoad = Infinity
    for (let e = this.siteFirst[site]!; e < this.siteFirst[site + 1]!; e++) {
      if (!this.alive[e]) continue
      const load = this.active[e]! / this.weight[e]!
      if (load < bestLoad) { best = e; bestLoad = load }
    }
    return best
  }

  firstEdge(site: number): number {
    return this.siteFirst[site]!
  }

  private detach(slot: number): void {
    const e = this.sEdge[slot]!
    this.active[e]--
    this.siteActive[this.edgeSite[e]!]--
    this.sEdge[slot] = -1
  }

  /** The site that serves a viewer of `site`: itself, or the next live one; -1 when none is. */
  private servingSite(site: number): number {
    const n = this.siteAlive.length
    for (let i = 0; i < n; i++) {
      const s = (site + i) % n
      if (this.siteAlive[s]) return s
    }
    return -1
  }

  /** Applies the failures due by time t. */
  private apply(t: number): void {
    while (this.failuresDone < this.failures.length && this.failures[this.failuresDone]!.atMs <= t) {
      const f = this.failures[this.failuresDone++]!
      const first = this.firstEdge(f.site)
      const dead = f.kind === 'edge' ? [first + f.edge] : Array.from({ length: this.dep.sites[f.site]!.edges.length }, (_, i) => first + i)
      let moved = 0
      let keysMoved = 0
      if (f.kind === 'edge' && this.o.steering !== 'load')
        for (let k = 0; k < this.keys.count; k++) if (this.owners!.firstAlive(f.site, k, this.alive) === dead[0]) keysMoved++
      for (const e of dead) { moved += this.active[e]!; this.alive[e] = 0; this.siteWeight[f.site] -= this.weight[e]! }
      for (let slot = 0; slot < this.sEdge.length; slot++) if (this.sEdge[slot]! >= 0 && !this.alive[this.sEdge[slot]!]) this.detach(slot)
      // a site with no live edge left is a failed site: its viewers go to the next one
      if (f.kind === 'site' || this.siteWeight[f.site]! <= 0 || this.dep.sites[f.site]!.edges.every((_, i) => !this.alive[first + i])) this.siteAlive[f.site] = 0
      this.tally.failed(f, f.atMs, moved, f.kind === 'edge' && this.o.steering !== 'load' ? keysMoved : null, f.kind === 'site' ? this.servingSite(f.site) : f.site)
    }
  }

  /** Grows the session arrays to n slots; returns the first new slot (the others go to the free list). */
  private grow(n: number): number {
    const old = this.sSite.length
    const g = <A extends Int32Array>(a: A): A => { const b = new Int32Array(n); b.set(a); return b as A }
    this.sSite = g(this.sSite); this.sServ = g(this.sServ); this.sTitle = g(this.sTitle); this.sNext = g(this.sNext)
    this.sEnd = g(this.sEnd); this.sEdge = g(this.sEdge).fill(-1, old); this.sKey = g(this.sKey); this.sId = g(this.sId)
    for (let i = n - 1; i > old; i--) this.free.push(i)
    return old
  }
}
