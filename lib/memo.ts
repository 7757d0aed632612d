/**
 * A pure function's results kept by argument, for arguments that are few and
 * repeat on every request (a configured secret's digest, a title's
 * Last-Modified date): at most `max` are kept, and past that the memo starts
 * over rather than tracking recency, which is enough when the set is small
 * and a clear costs one recomputation each.
 */
export function memoized<K, V>(max: number, compute: (key: K) => V): (key: K) => V {
  const kept = new Map<K, V>()
  return key => {
    let v = kept.get(key)
    if (v === undefined) {
      if (kept.size >= max) kept.clear()
      v = compute(key)
      kept.set(key, v)
    }
    return v
  }
}
