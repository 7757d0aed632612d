import { LRUCache } from 'lru-cache'
import type { EvictionPolicy, PolicySnapshot } from './policy.js'

/**
 * Least recently used, on lru-cache's recency list bounded by `maxSize`: the
 * library evicts from the cold end on `set`, and its dispose hook tells us
 * which keys went. Admission is unconditional unless the entry alone is larger
 * than the tier. The cache maps key to size; the bytes live in the tier.
 */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru'
  private lru: LRUCache<string, number> | null
  /** filled by dispose during one `insert` */
  private evicted: string[] = []

  constructor(public capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    this.lru = this.make(capacity)
  }

  private make(capacity: number): LRUCache<string, number> | null {
    return capacity === 0 ? null : new LRUCache<string, number>({
      maxSize: capacity,
      sizeCalculation: bytes => bytes,
      dispose: (_bytes, key, reason) => { if (reason === 'evict') this.evicted.push(key) },
    })
  }

  /** lru-cache's maxSize is fixed: a new list, filled oldest first, so the oldest are the ones it evicts. */
  resize(capacity: number): string[] {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    const old = this.lru ? [...this.lru.rentries()] as [string, number][] : []
    this.capacity = capacity
    this.lru = this.make(capacity)
    this.evicted = []
    const dropped: string[] = []
    for (const [k, b] of old) {
      if (this.lru === null || b > capacity) dropped.push(k)
      else this.lru.set(k, b)
    }
    return [...dropped, ...this.evicted]
  }

  get size(): number {
    return this.lru?.calculatedSize ?? 0
  }

  get count(): number {
    return this.lru?.size ?? 0
  }

  has(key: string): boolean {
    return this.lru?.has(key) ?? false
  }

  hit(key: string): void {
    this.lru?.get(key)
  }

  miss(_key: string): void {
    // recency only: a miss leaves no trace
  }

  insert(key: string, bytes: number): string[] {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected bytes to be a positive integer, got ${bytes}`)
    if (this.lru === null || bytes > this.capacity) {
      this.remove(key)
      return [key]
    }
    this.evicted = []
    this.lru.set(key, bytes)
    return this.evicted
  }

  victims(key: string, bytes: number): string[] {
    if (this.has(key)) return []
    if (this.lru === null || bytes > this.capacity) return [key]
    const out: string[] = []
    let free = this.capacity - this.size
    // rkeys(): least recently used first, without touching recency
    for (const k of this.lru.rkeys()) {
      if (free >= bytes) break
      out.push(k)
      free += this.lru.peek(k) ?? 0
    }
    return out
  }

  remove(key: string): void {
    this.lru?.delete(key)
  }

  /** Keys least recently used first, with their sizes. */
  snapshot(): PolicySnapshot {
    return { policy: this.name, capacity: this.capacity, order: this.lru ? [...this.lru.rentries()] : [] }
  }

  restore(snap: PolicySnapshot, sizeOf: (key: string) => number | undefined): boolean {
    if (snap.policy !== this.name || !Array.isArray(snap.order) || this.lru === null) return false
    let total = 0
    const keep: [string, number][] = []
    for (const [k] of snap.order as [string, number][]) {
      const b = sizeOf(k)
      if (b !== undefined) { keep.push([k, b]); total += b }
    }
    if (total > this.capacity) return false
    this.lru.clear()
    for (const [k, b] of keep) this.lru.set(k, b)
    return true
  }
}
