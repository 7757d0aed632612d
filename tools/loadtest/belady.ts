/**
 * Belady's MIN, the offline optimum for equal-size items: on a miss with the
 * cache full, drop whichever of the cached items and the newcomer is next
 * needed furthest in the future (the newcomer is not admitted if it is that
 * one; our policies may decline admission too, so this is their true bound).
 * O(n log n) with a max-heap of next-use times and lazy deletion.
 *
 * With chunks of different sizes (a title's last chunk is short) counting in
 * items is no longer right: room for `capacity / typical` items understates
 * how many short chunks fit, so a policy counting bytes could beat it, and
 * maximising hits is not maximising hit bytes. `beladyBytes` is the bound
 * for that case: the same furthest-next-use rule, in bytes, where a chunk may
 * be kept in part (see its comment for why that is an upper bound).
 */
export function nextUses(keys: readonly string[]): Int32Array {
  const next = new Int32Array(keys.length)
  const seen = new Map<string, number>()
  for (let i = keys.length - 1; i >= 0; i--) {
    next[i] = seen.get(keys[i]!) ?? 0x7fffffff
    seen.set(keys[i]!, i)
  }
  return next
}

class MaxHeap {
  private readonly a: [number, string][] = []
  push(x: [number, string]): void {
    const a = this.a
    a.push(x)
    for (let i = a.length - 1; i > 0;) {
      const p = (i - 1) >> 1
      if (a[p]![0] >= a[i]![0]) break
      ;[a[p], a[i]] = [a[i]!, a[p]!]
      i = p
    }
  }
  pop(): [number, string] | undefined {
    const a = this.a
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last) {
      a[0] = last
      for (let i = 0; ;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && a[l]![0] > a[m]![0]) m = l
        if (r < a.length && a[r]![0] > a[m]![0]) m = r
        if (m === i) break
        ;[a[m], a[i]] = [a[i]!, a[m]!]
        i = m
      }
    }
    return top
  }
}

/** Hits MIN achieves on `keys` with room for `capacity` items; `onHit(i)` is told which requests hit (to weigh them by bytes). */
export function beladyHits(keys: readonly string[], capacity: number, onHit?: (i: number) => void): number {
  if (capacity <= 0) return 0
  const next = nextUses(keys)
  const cached = new Map<string, number>() // key → its next use
  const heap = new MaxHeap()
  let hits = 0
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    const nu = next[i]!
    if (cached.has(k)) {
      hits++
      onHit?.(i)
      cached.set(k, nu)
      heap.push([nu, k])
      continue
    }
    if (cached.size >= capacity) {
      // find the cached item needed furthest away (skipping stale heap entries)
      let top = heap.pop()!
      while (cached.get(top[1]) !== top[0]) top = heap.pop()!
      if (top[0] <= nu) {
        heap.push(top) // the newcomer is needed last: bypass it
        continue
      }
      cached.delete(top[1])
    }
    cached.set(k, nu)
    heap.push([nu, k])
  }
  return hits
}

/**
 * Byte hits of the fractional MIN: the cache holds up to `capacityBytes`, and
 * may keep any part of a chunk; a request is credited with the share of its
 * chunk held times the bytes it read. On each request the chunk is taken in
 * whole, then bytes are dropped from the chunks needed furthest in the future
 * (the newcomer included), the last one dropped only in part.
 *
 * Why this bounds every real policy when requests read whole chunks: cut each
 * chunk into one-byte slivers. A real cache (whole chunks only) is one way of
 * keeping slivers, and a kept sliver scores one byte at its chunk's next
 * request. Keeping at most `capacityBytes` equal-size slivers to maximise
 * sliver hits is the equal-size problem, which furthest-next-use solves
 * exactly (Belady); slivers of one chunk share their next use, so the rule
 * keeps or drops them together except at the margin, which is what this
 * computes without cutting anything. With equal sizes and a capacity that is
 * a whole number of chunks it is exactly `beladyHits` × chunk bytes.
 *
 * When a request reads only part of its chunk, the sliver's score is that
 * request's share, the slivers are no longer of equal worth, and this rule is
 * then a close estimate of the optimum rather than a proven bound (the exact
 * bound would be a min-cost flow, Berger et al.'s FOO); `partialShare`
 * lets a caller say how much that concerns.
 */
export interface SizedRead {
  key: string
  /** the chunk's size: what caching it costs */
  chunkBytes: number
  /** bytes this request read: what a hit on it is worth */
  bytes: number
}

export function beladyBytes(reads: readonly SizedRead[], capacityBytes: number): number {
  return beladyByteFigures(reads, capacityBytes).hitBytes
}

/**
 * `beladyBytes`'s hit bytes, and the bytes that cache fetches upstream: on
 * each request the part of its chunk not held (a whole chunk on a miss, as
 * an edge fills). With whole-chunk reads of the edge's own kind, 1 − fetched
 * / bytes read is the origin offload MIN reaches.
 */
export function beladyByteFigures(reads: readonly SizedRead[], capacityBytes: number): { hitBytes: number; fetchedBytes: number } {
  if (capacityBytes <= 0) return { hitBytes: 0, fetchedBytes: reads.reduce((s, r) => s + r.chunkBytes, 0) }
  let fetchedBytes = 0
  const next = nextUses(reads.map(r => r.key))
  const held = new Map<string, { bytes: number; next: number }>()
  const heap = new MaxHeap()
  let total = 0
  let hitBytes = 0
  for (let i = 0; i < reads.length; i++) {
    const r = reads[i]!
    const size = r.chunkBytes
    const h = held.get(r.key)
    fetchedBytes += size - Math.min(size, h?.bytes ?? 0)
    if (h !== undefined) {
      hitBytes += r.bytes * Math.min(1, h.bytes / size)
      total -= h.bytes
    }
    const nu = next[i]!
    if (nu === 0x7fffffff) { // never needed again: keeping it is worth nothing
      held.delete(r.key)
      continue
    }
    held.set(r.key, { bytes: size, next: nu })
    total += size
    heap.push([nu, r.key])
    while (total > capacityBytes) {
      const top = heap.pop()!
      const e = held.get(top[1])
      if (e === undefined || e.next !== top[0]) continue // stale
      const drop = Math.min(e.bytes, total - capacityBytes)
      e.bytes -= drop
      total -= drop
      if (e.bytes > 0) heap.push(top)
      else held.delete(top[1])
    }
  }
  return { hitBytes, fetchedBytes }
}

/** The share of reads that read less than their whole chunk (where `beladyBytes` is an estimate, not a bound). */
export function partialShare(reads: readonly SizedRead[]): number {
  let n = 0
  for (const r of reads) if (r.bytes < r.chunkBytes) n++
  return reads.length ? n / reads.length : 0
}
