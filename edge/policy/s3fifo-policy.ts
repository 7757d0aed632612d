import type { EvictionPolicy, PolicySnapshot } from './policy.js'

/**
 * S3-FIFO (Yang et al., SOSP 2023), by bytes: a small FIFO (10 % of the
 * capacity) that new keys enter, a main FIFO, and a ghost FIFO of keys only.
 * Most one-hit wonders (the tail chunks of a title one viewer abandoned) leave
 * through the small queue without ever touching main. A key leaving small is
 * promoted to main if it was hit while there, else remembered in the ghost; a
 * key inserted while in the ghost goes straight to main. Main evicts in FIFO
 * order but gives each hit key another lap (its 2-bit counter decremented).
 *
 * Queues are Maps: insertion order is FIFO order, delete + set moves to the tail.
 */
interface Entry {
  bytes: number
  freq: number
}

export class S3FifoPolicy implements EvictionPolicy {
  readonly name = 's3fifo'
  private readonly small = new Map<string, Entry>()
  private readonly main = new Map<string, Entry>()
  private readonly ghost = new Map<string, number>()
  private smallBytes = 0
  private mainBytes = 0
  private ghostBytes = 0
  private smallCap: number
  private ghostCap: number

  /**
   * `wanted`: optional knowledge of near-future reads (live sessions). A wanted
   * key leaving small goes to main as if it had been hit, and main gives a
   * wanted key another lap, at most once per pass over main.
   */
  constructor(public capacity: number, private readonly smallRatio = 0.1, private readonly wanted?: (key: string) => number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    this.smallCap = Math.floor(capacity * smallRatio)
    this.ghostCap = capacity - this.smallCap
  }

  get size(): number {
    return this.smallBytes + this.mainBytes
  }

  get count(): number {
    return this.small.size + this.main.size
  }

  has(key: string): boolean {
    return this.small.has(key) || this.main.has(key)
  }

  hit(key: string): void {
    const e = this.small.get(key) ?? this.main.get(key)
    if (e && e.freq < 3) e.freq++
  }

  miss(_key: string): void {}

  insert(key: string, bytes: number): string[] {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected bytes to be a positive integer, got ${bytes}`)
    if (this.has(key)) return []
    if (bytes > this.capacity) return [key]
    const evicted: string[] = []
    const ghosted = this.ghost.get(key)
    if (ghosted !== undefined) {
      this.ghost.delete(key)
      this.ghostBytes -= ghosted
      this.main.set(key, { bytes, freq: 0 })
      this.mainBytes += bytes
    } else {
      this.small.set(key, { bytes, freq: 0 })
      this.smallBytes += bytes
    }
    while (this.size > this.capacity) {
      if (this.smallBytes > this.smallCap || this.main.size === 0) this.evictSmall(evicted)
      else this.evictMain(evicted)
    }
    return evicted
  }

  /**
   * What `insert(key, bytes)` would evict, found by inserting into a copy of
   * the queues (O(keys held)): eviction rotates main and decrements counters,
   * so a dry run in place would be the same code again with overlays.
   */
  victims(key: string, bytes: number): string[] {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected bytes to be a positive integer, got ${bytes}`)
    if (this.has(key)) return []
    if (bytes > this.capacity) return [key]
    const c = new S3FifoPolicy(this.capacity, this.smallRatio, this.wanted)
    for (const [k, e] of this.small) c.small.set(k, { ...e })
    for (const [k, e] of this.main) c.main.set(k, { ...e })
    for (const [k, b] of this.ghost) c.ghost.set(k, b)
    c.smallBytes = this.smallBytes; c.mainBytes = this.mainBytes; c.ghostBytes = this.ghostBytes
    return c.insert(key, bytes)
  }

  /** The same evictions an insert makes, until the queues fit the new capacity; the ghost is trimmed to its new share. */
  resize(capacity: number): string[] {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    this.capacity = capacity
    this.smallCap = Math.floor(capacity * this.smallRatio)
    this.ghostCap = capacity - this.smallCap
    const evicted: string[] = []
    while (this.size > this.capacity) {
      if (this.smallBytes > this.smallCap || this.main.size === 0) this.evictSmall(evicted)
      else this.evictMain(evicted)
    }
    while (this.ghostBytes > this.ghostCap) {
      const [g, b] = this.ghost.entries().next().value as [string, number]
      this.ghost.delete(g)
      this.ghostBytes -= b
    }
    return evicted
  }

  private evictSmall(evicted: string[]): void {
    const [key, e] = this.small.entries().next().value as [string, Entry]
    this.small.delete(key)
    this.smallBytes -= e.bytes
    if (e.freq >= 1 || (this.wanted !== undefined && this.wanted(key) > 0)) {
      this.main.set(key, { bytes: e.bytes, freq: 0 })
      this.mainBytes += e.bytes
      return
    }
    evicted.push(key)
    this.ghost.set(key, e.bytes)
    this.ghostBytes += e.bytes
    while (this.ghostBytes > this.ghostCap) {
      const [g, b] = this.ghost.entries().next().value as [string, number]
      this.ghost.delete(g)
      this.ghostBytes -= b
    }
  }

  private evictMain(evicted: string[]): void {
    // wanted keys get one extra lap each per call, so the loop ends even if every key is wanted
    let spared = 0
    for (;;) {
      const [key, e] = this.main.entries().next().value as [string, Entry]
      this.main.delete(key)
      if (e.freq > 0) {
        e.freq--
        this.main.set(key, e)
        continue
      }
      if (this.wanted !== undefined && spared < this.main.size && this.wanted(key) > 0) {
        spared++
        this.main.set(key, e)
        continue
      }
      this.mainBytes -= e.bytes
      evicted.push(key)
      return
    }
  }

  remove(key: string): void {
    const s = this.small.get(key)
    if (s) { this.small.delete(key); this.smallBytes -= s.bytes }
    const m = this.main.get(key)
    if (m) { this.main.delete(key); this.mainBytes -= m.bytes }
  }

  /** Keys in eviction order per queue, for persistence and tests. */
  state(): { small: [string, number, number][]; main: [string, number, number][]; ghost: [string, number][] } {
    return {
      small: [...this.small].map(([k, e]) => [k, e.bytes, e.freq]),
      main: [...this.main].map(([k, e]) => [k, e.bytes, e.freq]),
      ghost: [...this.ghost],
    }
  }

  snapshot(): PolicySnapshot {
    return { policy: this.name, capacity: this.capacity, ...this.state() }
  }

  /** Rebuilds the queues in their saved order, with the sizes of the keys that survived; the ghost is kept whole. */
  restore(snap: PolicySnapshot, sizeOf: (key: string) => number | undefined): boolean {
    if (snap.policy !== this.name || !Array.isArray(snap.small) || !Array.isArray(snap.main) || !Array.isArray(snap.ghost)) return false
    this.clear()
    for (const [q, part] of [[this.small, snap.small], [this.main, snap.main]] as const) {
      for (const [k, , f] of part as [string, number, number][]) {
        const bytes = sizeOf(k)
        if (bytes === undefined || this.has(k)) continue
        q.set(k, { bytes, freq: Math.min(3, Math.max(0, f | 0)) })
        if (q === this.small) this.smallBytes += bytes
        else this.mainBytes += bytes
      }
    }
    for (const [k, b] of snap.ghost as [string, number][]) {
      if (this.has(k) || !(b > 0) || this.ghostBytes + b > this.ghostCap) continue
      this.ghost.set(k, b)
      this.ghostBytes += b
    }
    if (this.size > this.capacity) { this.clear(); return false }
    return true
  }

  private clear(): void {
    this.small.clear(); this.main.clear(); this.ghost.clear()
    this.smallBytes = this.mainBytes = this.ghostBytes = 0
  }
}
