import t from 'tap'
import { beladyBytes, beladyHits, type SizedRead } from './belady.js'
import { mulberry32 } from './random.js'
import { compare } from './simulate.js'
import { catalogChunks, defaultTrace, generateTrace } from './trace.js'

/** Exhaustive search: on every miss, try every choice (bypass, or evict any one). */
function bruteForce(keys: string[], cap: number, i = 0, cache: string[] = []): number {
  if (i === keys.length) return 0
  const k = keys[i]!
  if (cache.includes(k)) return 1 + bruteForce(keys, cap, i + 1, cache)
  let best = bruteForce(keys, cap, i + 1, cache) // bypass
  if (cache.length < cap) best = Math.max(best, bruteForce(keys, cap, i + 1, [...cache, k]))
  else for (let j = 0; j < cache.length; j++) {
    const next = [...cache]
    next[j] = k
    best = Math.max(best, bruteForce(keys, cap, i + 1, next))
  }
  return best
}

t.test('MIN equals brute force on tiny traces', async t => {
  const rng = mulberry32(42)
  for (let trial = 0; trial < 150; trial++) {
    const len = 4 + Math.floor(rng() * 9)
    const alphabet = 2 + Math.floor(rng() * 4)
    const cap = 1 + Math.floor(rng() * 3)
    const keys = Array.from({ length: len }, () => `k${Math.floor(rng() * alphabet)}`)
    const want = bruteForce(keys, cap)
    if (beladyHits(keys, cap) !== want) t.fail(`${keys.join(' ')} cap ${cap}: MIN ${beladyHits(keys, cap)}, optimum ${want}`)
  }
  t.pass('150 random tiny traces')
  t.equal(beladyHits(['a', 'b', 'a'], 0), 0)
})

t.test('on a video trace every policy stays at or below MIN, and frequency beats recency at small sizes', async t => {
  const opts = { ...defaultTrace, titles: 300, sessions: 2500 }
  const trace = generateTrace(opts)
  const cap = Math.round(catalogChunks(opts) * 0.05)
  const r = Object.fromEntries(compare(trace, cap).map(x => [x.policy, x.hitRatio]))
  for (const p of ['lru', 's3fifo', 'wtinylfu']) t.ok(r[p]! <= r.min!, `${p} ${r[p]!.toFixed(3)} <= min ${r.min!.toFixed(3)}`)
  t.ok(r.wtinylfu! > r.lru!, `wtinylfu ${r.wtinylfu!.toFixed(3)} > lru ${r.lru!.toFixed(3)}`)
  t.ok(r.s3fifo! > r.lru!, `s3fifo ${r.s3fifo!.toFixed(3)} > lru ${r.lru!.toFixed(3)}`)
})

t.test('traces are reproducible from their seed', async t => {
  const a = generateTrace({ ...defaultTrace, sessions: 200 })
  const b = generateTrace({ ...defaultTrace, sessions: 200 })
  t.same(a.map(e => e.key), b.map(e => e.key))
  const c = generateTrace({ ...defaultTrace, sessions: 200, seed: 2 })
  t.not(a.map(e => e.key).join(), c.map(e => e.key).join())
  const openings = a.filter(e => e.index === 0).length
  const tenth = a.filter(e => e.index === 9).length
  t.ok(openings > 2 * tenth, `openings are read more than later chunks (${openings} vs ${tenth})`)
})

/** Exhaustive search over whole-chunk caches in bytes: on every miss, bypass or admit and drop any subset that makes room. */
function bruteBytes(reads: SizedRead[], cap: number, i = 0, cache: Map<string, number> = new Map()): number {
  if (i === reads.length) return 0
  const r = reads[i]!
  if (cache.has(r.key)) return r.bytes + bruteBytes(reads, cap, i + 1, cache)
  let best = bruteBytes(reads, cap, i + 1, cache)
  const held = [...cache]
  for (let mask = 0; mask < 1 << held.length; mask++) {
    const next = new Map(held.filter((_, j) => !(mask & (1 << j))))
    let used = r.chunkBytes
    for (const b of next.values()) used += b
    if (used <= cap) best = Math.max(best, bruteBytes(reads, cap, i + 1, next.set(r.key, r.chunkBytes)))
  }
  return best
}

t.test('MIN in bytes bounds brute force with short last chunks, and is exact for equal chunks', async t => {
  const rng = mulberry32(7)
  let strict = 0
  for (let trial = 0; trial < 150; trial++) {
    const len = 4 + Math.floor(rng() * 7)
    const alphabet = 2 + Math.floor(rng() * 4)
    const cap = 10 + Math.floor(rng() * 25)
    // key k3 is a short last chunk
    const reads = Array.from({ length: len }, () => { const k = `k${Math.floor(rng() * alphabet)}`; const c = k === 'k3' ? 4 : 10; return { key: k, chunkBytes: c, bytes: c } })
    const bound = beladyBytes(reads, cap)
    const best = bruteBytes(reads, cap)
    if (bound < best - 1e-9) return t.fail(`${reads.map(r => r.key).join(' ')} cap ${cap}: bound ${bound} below the optimum ${best}`)
    if (bound > best + 1e-9) strict++
    const equal = reads.map(r => ({ ...r, chunkBytes: 10, bytes: 10 }))
    const whole = Math.floor(cap / 10) * 10
    const want = bruteBytes(equal, whole)
    if (Math.abs(beladyBytes(equal, whole) - want) > 1e-9) return t.fail(`${reads.map(r => r.key).join(' ')} cap ${whole}: ${beladyBytes(equal, whole)} vs ${want}`)
    if (beladyHits(equal.map(r => r.key), whole / 10) * 10 !== want) return t.fail('beladyHits disagrees')
  }
  t.pass(`150 tiny traces: never below the optimum (above it on ${strict}, where it keeps part of a chunk)`)
  t.equal(beladyBytes([{ key: 'a', chunkBytes: 5, bytes: 5 }, { key: 'a', chunkBytes: 5, bytes: 5 }], 0), 0)
  // room for 1.5 chunks: the fractional bound keeps half of b between its reads
  t.equal(beladyBytes(['a', 'b', 'a', 'b'].map(key => ({ key, chunkBytes: 10, bytes: 10 })), 15), 15)
})
