/**
 * Sliding-window demand counts in constant memory: per key and window, a ring
 * of time buckets (5 min = 30 × 10 s, 1 h = 60 × 1 min, 24 h = 96 × 15 min).
 * Adding to a key advances its rings to `now` (zeroing buckets that slid out)
 * and adds to the newest bucket; a total is the sum of the ring. Memory per key
 * is fixed whatever the traffic: 186 numbers.
 *
 * The clock is injected (every call takes `now` in ms), so tests drive time.
 *
 * Several routers: each counts only the reports it received itself. A router's
 * state is a set of rings stamped with its id; peers exchange states and keep
 * the latest one per router id, replacing (never adding), so exchanging twice
 * or out of order never double-counts. The cluster total is the sum over
 * router ids (see `MergedCounts`). This is a G-counter per bucket.
 */
export interface WindowSpec {
  name: string
  bucketMs: number
  buckets: number
}

export const WINDOWS: readonly WindowSpec[] = [
  { name: '5m', bucketMs: 10_000, buckets: 30 },
  { name: '1h', bucketMs: 60_000, buckets: 60 },
  { name: '24h', bucketMs: 900_000, buckets: 96 },
]

export type WindowName = '5m' | '1h' | '24h'

export function windowSpec(name: string): WindowSpec | undefined {
  return WINDOWS.find(w => w.name === name)
}

/** One window's ring for one key. `head` is the absolute bucket number of the newest slot. */
export interface Ring {
  head: number
  counts: number[]
}

function advance(ring: Ring, spec: WindowSpec, now: number): void {
  const bucket = Math.floor(now / spec.bucketMs)
  if (bucket <= ring.head) return
  const steps = Math.min(bucket - ring.head, spec.buckets)
  for (let i = 1; i <= steps; i++) ring.counts[(ring.head + i) % spec.buckets] = 0
  ring.head = bucket
}

function sum(ring: Ring): number {
  let s = 0
  for (const c of ring.counts) s += c
  return s
}

export class WindowCounter {
  private readonly rings = new Map<string, Ring[]>()

  add(key: string, n: number, now: number): void {
    let rs = this.rings.get(key)
    if (!rs) {
      rs = WINDOWS.map(w => ({ head: Math.floor(now / w.bucketMs), counts: new Array<number>(w.buckets).fill(0) }))
      this.rings.set(key, rs)
    }
    WINDOWS.forEach((w, i) => {
      const r = rs![i]!
      advance(r, w, now)
      // advance() leaves head >= now's bucket; a report stamped in the past lands in its own
      // bucket while that is still in the window, and is dropped once it has slid out
      const bucket = Math.floor(now / w.bucketMs)
      if (bucket > r.head - w.buckets) r.counts[bucket % w.buckets]! += n
    })
  }

  total(key: string, window: WindowName, now: number): number {
    const rs = this.rings.get(key)
    if (!rs) return 0
    const i = WINDOWS.findIndex(w => w.name === window)
    advance(rs[i]!, WINDOWS[i]!, now)
    return sum(rs[i]!)
  }

  keys(): IterableIterator<string> {
    return this.rings.keys()
  }

  get size(): number {
    return this.rings.size
  }

  /** Drops keys with nothing left in their longest window. */
  prune(now: number): void {
    for (const key of [...this.rings.keys()]) if (this.total(key, '24h', now) === 0) this.rings.delete(key)
  }

  /** Plain data for SQLite snapshots and peer exchange. */
  snapshot(): Record<string, Ring[]> {
    const out: Record<string, Ring[]> = {}
    for (const [k, rs] of this.rings) out[k] = rs.map(r => ({ head: r.head, counts: [...r.counts] }))
    return out
  }

  static restore(state: Record<string, Ring[]>): WindowCounter {
    const c = new WindowCounter()
    for (const [k, rs] of Object.entries(state)) {
      if (!Array.isArray(rs) || rs.length !== WINDOWS.length) continue
      if (!rs.every((r, i) => Array.isArray(r.counts) && r.counts.length === WINDOWS[i]!.buckets && Number.isInteger(r.head))) continue
      c.rings.set(k, rs.map(r => ({ head: r.head, counts: r.counts.map(x => (Number.isFinite(x) && x > 0 ? x : 0)) })))
    }
    return c
  }
}

/** The cluster's view: this router's own counter plus the latest state of each peer. */
export class MergedCounts {
  private readonly peers = new Map<string, { at: number; counter: WindowCounter }>()

  constructor(readonly routerId: string, readonly own: WindowCounter) {}

  /** Replaces a peer's state if it is newer than the one held. Idempotent. */
  mergePeer(routerId: string, at: number, state: Record<string, Ring[]>): void {
    if (routerId === this.routerId) return
    const have = this.peers.get(routerId)
    if (have && have.at >= at) return
    this.peers.set(routerId, { at, counter: WindowCounter.restore(state) })
  }

  total(key: string, window: WindowName, now: number): number {
    let s = this.own.total(key, window, now)
    for (const p of this.peers.values()) s += p.counter.total(key, window, now)
    return s
  }

  /** Each key once, with no Set of them all when there are no peers: a pass over 400,000 keys that skips most cost that much less. */
  eachKey(): Iterable<string> {
    return this.peers.size === 0 ? this.own.keys() : this.keys()
  }

  keys(): Set<string> {
    const out = new Set(this.own.keys())
    for (const p of this.peers.values()) for (const k of p.counter.keys()) out.add(k)
    return out
  }
}
