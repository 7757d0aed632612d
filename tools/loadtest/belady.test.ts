import t from 'tap'
import { beladyHits } from './belady.js'
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
