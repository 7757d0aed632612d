import t from 'tap'
import { PredictivePolicy } from './predictive-policy.js'
import { parseTierKey, sessionKey, tierKeyToSession } from './policy.js'

/**
 * The predictive policy: it keeps to its capacity on random traces and is
 * deterministic (its sampling PRNG is seeded), it prefers a popular title's
 * opening to a tail chunk few viewers reach, it protects what a live session
 * is about to read, and its state round-trips through a snapshot.
 */
const make = (cap: number) => new PredictivePolicy(cap, 10, { horizon: 4, idleMs: 1000, keyOf: sessionKey, parse: parseTierKey, trackKey: tierKeyToSession, sample: 8 })

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('random traces: never over capacity, evicted keys are gone, and two instances decide the same', async t => {
  for (let run = 0; run < 20; run++) {
    const r = rng(run + 1)
    const a = make(100), b = make(100)
    const held = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const title = `m${Math.floor(r() ** 2 * 20)}`
      const index = Math.floor(r() * 8)
      const key = `${title}/${index}/x`
      const bytes = 5 + Math.floor(r() * 20)
      a.observe(`s${i % 7}`, title, index, i)
      b.observe(`s${i % 7}`, title, index, i)
      if (a.has(key)) continue
      const ea = a.insert(key, bytes)
      const eb = b.insert(key, bytes)
      if (JSON.stringify(ea) !== JSON.stringify(eb)) return t.fail(`run ${run} step ${i}: instances disagree`)
      held.add(key)
      for (const k of ea) held.delete(k)
      if (a.size > a.capacity) return t.fail(`run ${run} step ${i}: ${a.size} > ${a.capacity}`)
      for (const k of ea) if (a.has(k)) return t.fail(`run ${run} step ${i}: evicted ${k} still held`)
    }
    t.equal(a.count, held.size, `run ${run}: the policy holds what it admitted and did not evict`)
  }
})

t.test('a popular title\'s opening is kept over a tail chunk few viewers reach', async t => {
  const p = make(30)
  let now = 0
  // 20 viewers start "hit"; 15 abandon after chunk 0; one viewer of "rare" reads far into it
  for (let v = 0; v < 20; v++) for (let i = 0; i < (v < 5 ? 3 : 1); i++) p.observe(`v${v}`, 'hit', i, now++)
  for (let i = 0; i < 8; i++) p.observe('x', 'rare', i, now++)
  now += 10_000 // every session idle: only popularity decides
  p.observe('late', 'other', 0, now)
  t.same(p.insert('hit/0/a', 10), [])
  t.same(p.insert('hit/1/a', 10), [])
  t.same(p.insert('hit/2/a', 10), [])
  t.same(p.insert('rare/7/a', 10), ['rare/7/a'], 'the tail chunk of the rare title is not admitted')
})

t.test('a chunk a live session is about to read wins over one nobody will', async t => {
  const p = make(20)
  p.observe('a', 'film', 0, 0)
  p.observe('b', 'film', 0, 0)
  t.same(p.insert('film/0/a', 10), [])
  t.same(p.insert('film/5/a', 10), [])
  p.observe('c', 'other', 3, 1) // session c will read other/4 next
  t.same(p.insert('other/4/a', 10), ['film/5/a'], 'the chunk no session reaches soon goes')
})

t.test('the snapshot restores keys, popularity and the survival curve', async t => {
  const p = make(50)
  for (let v = 0; v < 5; v++) for (let i = 0; i < 3; i++) p.observe(`v${v}`, 'film', i, v * 10 + i)
  for (let i = 0; i < 3; i++) p.insert(`film/${i}/a`, 10)
  const snap = JSON.parse(JSON.stringify(p.snapshot()))
  const q = make(50)
  t.ok(q.restore(snap, k => (k === 'film/2/a' ? undefined : 10)))
  t.equal(q.count, 2, 'keys whose file is gone are skipped')
  t.same(q.snapshot().starts, p.snapshot().starts)
  t.same(q.snapshot().surv, p.snapshot().surv)
  t.notOk(make(10).restore(snap, () => 10), 'a snapshot over the capacity is refused')
  t.notOk(make(50).restore({ ...snap, policy: 'lru' }, () => 10), 'another policy\'s snapshot is refused')
})
