/**
 * Belady's MIN, the offline optimum for equal-size items: on a miss with the
 * cache full, drop whichever of the cached items and the newcomer is next
 * needed furthest in the future (the newcomer is not admitted if it is that
 * one; our policies may decline admission too, so this is their true bound).
 * O(n log n) with a max-heap of next-use times and lazy deletion.
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
