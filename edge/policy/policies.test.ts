import t, { type Test } from 'tap'
import { createPolicy, POLICY_NAMES, sessionKey, tierKeyToSession, type EvictionPolicy } from './policy.js'
import { LruPolicy } from './lru-policy.js'
import { S3FifoPolicy } from './s3fifo-policy.js'
import { WTinyLfuPolicy } from './wtinylfu-policy.js'
import { CountMinSketch } from './count-min.js'

/**
 * Each policy against a small reference implementation written for clarity
 * (arrays, linear scans) on random traces: the evictions must be the same, in
 * the same order, at every step.
 */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface Ref { has(k: string): boolean; hit(k: string): void; miss(k: string): void; insert(k: string, b: number): string[] }

class RefLru implements Ref {
  q: [string, number][] = []
  constructor(private cap: number) {}
  has(k: string) { return this.q.some(e => e[0] === k) }
  hit(k: string) { const i = this.q.findIndex(e => e[0] === k); this.q.push(...this.q.splice(i, 1)) }
  miss() {}
  insert(k: string, b: number) {
    if (b > this.cap) return [k]
    this.q.push([k, b])
    const out: string[] = []
    while (this.q.reduce((s, e) => s + e[1], 0) > this.cap) out.push(this.q.shift()![0])
    return out
  }
}

class RefS3 implements Ref {
  s: { k: string; b: number; f: number }[] = []
  m: { k: string; b: number; f: number }[] = []
  g: { k: string; b: number }[] = []
  /** `wanted`: as the session-aware policy uses it (live sessions about to read a key) */
  constructor(private cap: number, private wanted?: (k: string) => number) {}
  sum(a: { b: number }[]) { return a.reduce((x, e) => x + e.b, 0) }
  has(k: string) { return [...this.s, ...this.m].some(e => e.k === k) }
  hit(k: string) { const e = [...this.s, ...this.m].find(e => e.k === k); if (e) e.f = Math.min(3, e.f + 1) }
  miss() {}
  insert(k: string, b: number) {
    if (b > this.cap) return [k]
    const out: string[] = []
    const gi = this.g.findIndex(e => e.k === k)
    if (gi >= 0) { this.g.splice(gi, 1); this.m.push({ k, b, f: 0 }) } else this.s.push({ k, b, f: 0 })
    const smallCap = Math.floor(this.cap * 0.1)
    while (this.sum(this.s) + this.sum(this.m) > this.cap) {
      if (this.sum(this.s) > smallCap || this.m.length === 0) {
        const e = this.s.shift()!
        if (e.f >= 1 || (this.wanted && this.wanted(e.k) > 0)) this.m.push({ k: e.k, b: e.b, f: 0 })
        else {
          out.push(e.k)
          this.g.push({ k: e.k, b: e.b })
          while (this.sum(this.g) > this.cap - smallCap) this.g.shift()
        }
      } else {
        let spared = 0
        for (;;) {
          const e = this.m.shift()!
          if (e.f > 0) { e.f--; this.m.push(e); continue }
          // a wanted key gets another lap, at most as many spares as keys left in main
          if (this.wanted && spared < this.m.length && this.wanted(e.k) > 0) { spared++; this.m.push(e); continue }
          out.push(e.k)
          break
        }
      }
    }
    return out
  }
}

class RefTiny implements Ref {
  w: [string, number][] = []
  p: [string, number][] = []
  r: [string, number][] = []
  sketch: CountMinSketch
  wCap: number; mCap: number; rCap: number
  constructor(private cap: number, typical: number) {
    this.wCap = Math.max(Math.floor(cap * 0.01), Math.min(cap, typical))
    this.mCap = cap - this.wCap
    this.rCap = Math.floor(this.mCap * 0.8)
    this.sketch = new CountMinSketch(Math.max(16, Math.ceil(cap / typical)))
  }
  sum(a: [string, number][]) { return a.reduce((x, e) => x + e[1], 0) }
  has(k: string) { return [...this.w, ...this.p, ...this.r].some(e => e[0] === k) }
  miss(k: string) { this.sketch.increment(k) }
  hit(k: string) {
    this.sketch.increment(k)
    let i = this.w.findIndex(e => e[0] === k)
    if (i >= 0) return void this.w.push(...this.w.splice(i, 1))
    i = this.p.findIndex(e => e[0] === k)
    if (i >= 0) {
      this.r.push(...this.p.splice(i, 1))
      while (this.sum(this.r) > this.rCap) this.p.push(this.r.shift()!)
      return
    }
    i = this.r.findIndex(e => e[0] === k)
    if (i >= 0) this.r.push(...this.r.splice(i, 1))
  }
  insert(k: string, b: number) {
    if (b > this.cap) return [k]
    const out: string[] = []
    this.w.push([k, b])
    while (this.sum(this.w) > this.wCap) {
      const [c, cb] = this.w.shift()!
      if (cb > this.mCap) { out.push(c); continue }
      const cf = this.sketch.frequency(c)
      const order = [...this.p, ...this.r]
      let free = this.mCap - this.sum(this.p) - this.sum(this.r)
      const victims: string[] = []
      let admitted = true
      for (const [v, vb] of order) {
        if (free >= cb) break
        if (cf <= this.sketch.frequency(v)) { admitted = false; break }
        victims.push(v)
        free += vb
      }
      if (!admitted || free < cb) { out.push(c); continue }
      for (const v of victims) {
        this.p = this.p.filter(e => e[0] !== v)
        this.r = this.r.filter(e => e[0] !== v)
        out.push(v)
      }
      this.p.push([c, cb])
    }
    return out
  }
}

function drive(t: Test, name: string, make: () => [EvictionPolicy, Ref], seed: number) {
  const [pol, ref] = make()
  const r = rng(seed)
  const keys = 120
  for (let step = 0; step < 6000; step++) {
    // skewed keys, two sizes (whole chunks and a short last chunk)
    const k = `k${Math.floor(keys * r() ** 2)}`
    const bytes = k.endsWith('7') ? 3 : 10
    if (pol.has(k) !== ref.has(k)) return t.fail(`${name} seed ${seed}: membership of ${k} differs at step ${step}`)
    if (pol.has(k)) { pol.hit(k); ref.hit(k); continue }
    pol.miss(k)
    ref.miss(k)
    const a = pol.insert(k, bytes)
    const b = ref.insert(k, bytes)
    if (a.join() !== b.join()) return t.fail(`${name} seed ${seed}: step ${step} evicted [${a}] where the reference evicted [${b}]`)
    if (pol.size > pol.capacity) return t.fail(`${name}: over capacity`)
  }
  t.pass(`${name} seed ${seed}: 6000 steps, same evictions`)
}


t.test('LRU, S3-FIFO and W-TinyLFU match their reference implementations on random traces', async t => {
  for (const seed of [1, 2, 3, 4, 5]) for (const cap of [30, 100, 400]) {
    drive(t, `lru cap ${cap}`, () => [new LruPolicy(cap), new RefLru(cap)], seed)
    drive(t, `s3fifo cap ${cap}`, () => [new S3FifoPolicy(cap), new RefS3(cap)], seed)
    drive(t, `wtinylfu cap ${cap}`, () => [new WTinyLfuPolicy(cap, 10), new RefTiny(cap, 10)], seed)
  }
})

t.test('the count-min sketch never under-counts before aging, and ages by halving', async t => {
  const s = new CountMinSketch(64)
  const exact = new Map<string, number>()
  const r = rng(9)
  for (let i = 0; i < 500; i++) {
    const k = `x${Math.floor(200 * r() ** 3)}`
    s.increment(k)
    exact.set(k, (exact.get(k) ?? 0) + 1)
  }
  for (const [k, n] of exact) if (s.frequency(k) < Math.min(15, n)) t.fail(`${k} under-counted`)
  t.pass('no key under-counted')
  const hot = new CountMinSketch(16)
  for (let i = 0; i < 15; i++) hot.increment('hot')
  t.equal(hot.frequency('hot'), 15)
  for (let i = 0; i < hot.sampleSize; i++) hot.increment(`cold${i}`)
  t.ok(hot.frequency('hot') <= 8, 'halved by aging')
  const copy = new CountMinSketch(16)
  t.ok(copy.restore(hot.snapshot()))
  t.equal(copy.frequency('hot'), hot.frequency('hot'), 'a snapshot restores the counts')
  t.notOk(new CountMinSketch(1024).restore(hot.snapshot()), 'a snapshot of another width is refused')
  const before = hot.snapshot()
  const unmixed = Buffer.concat([before.subarray(0, 8), before.subarray(12)]) // the layout before the hash was mixed: no version
  t.notOk(copy.restore(unmixed), 'a snapshot taken with the old hash is refused')
})

t.test('one-hit wonders do not flush a hot set under S3-FIFO and W-TinyLFU, as they do under LRU', async t => {
  const hot = Array.from({ length: 8 }, (_, i) => `hot${i}`)
  const results: Record<string, number> = {}
  for (const pol of [new LruPolicy(100), new S3FifoPolicy(100), new WTinyLfuPolicy(100, 10)]) {
    let hits = 0
    for (let round = 0; round < 200; round++) {
      for (const k of [...hot, `scan${round}a`, `scan${round}b`, `scan${round}c`]) {
        if (pol.has(k)) { pol.hit(k); if (k.startsWith('hot')) hits++ } else { pol.miss(k); pol.insert(k, 10) }
      }
    }
    results[pol.name] = hits / (200 * hot.length)
  }
  t.ok(results.s3fifo! > results.lru! + 0.2, `s3fifo ${results.s3fifo} vs lru ${results.lru}`)
  t.ok(results.wtinylfu! > results.lru! + 0.2, `wtinylfu ${results.wtinylfu} vs lru ${results.lru}`)
})

/**
 * The session-aware policies' inputs, written plainly: live sessions as a list
 * in last-seen order, `wanted` by scanning it. A session idle past `idleMs`
 * is dropped when any session reads; the horizon shrinks to `budget / live`.
 */
class RefTracker {
  sessions: { id: string; title: string; index: number; seen: number }[] = []
  constructor(private horizon: number, private idleMs: number, private budget: number) {}
  observe(id: string, title: string, index: number, now: number): boolean {
    const i = this.sessions.findIndex(s => s.id === id)
    const s = i >= 0 ? this.sessions.splice(i, 1)[0]! : undefined
    if (s && s.title === title && s.index === index) { s.seen = now; this.sessions.push(s); return false }
    this.sessions.push({ id, title, index, seen: now })
    this.sessions = this.sessions.filter(x => now - x.seen <= this.idleMs)
    return true
  }
  wanted(key: string): number {
    const h = Math.max(1, Math.min(this.horizon, Math.floor(this.budget / Math.max(1, this.sessions.length))))
    return this.sessions.filter(s => Array.from({ length: h }, (_, d) => sessionKey(s.title, s.index + d + 1)).includes(key)).length
  }
}

/**
 * The predictive policy, plainly: demand = title starts × (reads at the
 * index / reads at 0) + 20 per live session about to read it; both counters
 * halve every max(100, 100 × capacity in chunks) chunk arrivals. Eviction
 * samples 64 slots with the policy's documented PRNG (the slot array keeps
 * the policy's swap-with-last removal, which decides what a sample lands on)
 * and drops the lowest; a newcomer scoring no higher is declined.
 */
class RefPredictive implements Ref {
  slots: { k: string; title: string; index: number; b: number }[] = []
  starts: Record<string, number> = {}
  surv: number[] = []
  arrivals = 0
  seed = 0x2545f491
  tracker: RefTracker
  decayEvery: number
  constructor(private cap: number, typical: number, horizon: number, idleMs: number) {
    const chunks = Math.max(1, Math.floor(cap / typical))
    this.tracker = new RefTracker(horizon, idleMs, chunks * 8)
    this.decayEvery = Math.max(100, chunks * 100)
  }
  has(k: string) { return this.slots.some(e => e.k === k) }
  hit() {}
  miss() {}
  observe(id: string, title: string, index: number, now: number) {
    if (!this.tracker.observe(id, title, index, now)) return
    if (index === 0) this.starts[title] = (this.starts[title] ?? 0) + 1
    while (this.surv.length <= index) this.surv.push(0)
    this.surv[index]!++
    if (++this.arrivals < this.decayEvery) return
    this.arrivals = 0
    for (const t of Object.keys(this.starts)) if (this.starts[t]! < 0.02) delete this.starts[t]; else this.starts[t]! /= 2
    this.surv = this.surv.map(n => n / 2)
  }
  score(k: string) {
    const [title, index] = k.split('/')
    return (this.starts[title!] ?? 0) * ((this.surv[Number(index)] ?? 0) / (this.surv[0] || 1)) + 20 * this.tracker.wanted(tierKeyToSession(k))
  }
  random() {
    this.seed = (this.seed + 0x6d2b79f5) | 0
    let x = Math.imul(this.seed ^ (this.seed >>> 15), 1 | this.seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  insert(k: string, b: number) {
    if (b > this.cap) return [k]
    const mine = this.score(k)
    const out: string[] = []
    while (this.slots.reduce((s, e) => s + e.b, 0) + b > this.cap) {
      let low = Infinity, at = -1
      for (let j = 0; j < 64; j++) {
        const i = Math.floor(this.random() * this.slots.length)
        const sc = this.score(this.slots[i]!.k)
        if (sc < low) { low = sc; at = i }
      }
      if (mine <= low) return [...out, k]
      out.push(this.slots[at]!.k)
      const last = this.slots.pop()!
      if (at < this.slots.length) this.slots[at] = last
    }
    const [title, index] = k.split('/')
    this.slots.push({ k, title: title!, index: Number(index), b })
    return out
  }
}

/** A video-ish random trace: sessions reading titles forward from their opening, some seeking; the last chunk of a title is short. */
function* videoTrace(seed: number, steps: number): Generator<{ session: string; title: string; index: number; key: string; bytes: number; now: number }> {
  const r = rng(seed)
  const live: { id: string; title: string; index: number; len: number }[] = []
  for (let i = 0, next = 0; i < steps; i++) {
    if (live.length < 3 || r() < 0.15) {
      const t = Math.floor(12 * r() ** 2)
      live.push({ id: `s${next++}`, title: `m${t}`, index: -1, len: 4 + (t % 5) })
    }
    const at = Math.floor(r() * live.length)
    const s = live[at]!
    s.index += r() < 0.1 ? 2 : 1
    if (s.index >= s.len || r() < 0.08) { live.splice(at, 1); continue }
    const key = `${s.title}/${s.index}/d${s.title.length}`
    yield { session: s.id, title: s.title, index: s.index, key, bytes: s.index === s.len - 1 ? 4 : 10, now: i * 10 }
  }
}

function driveSessions(t: Test, name: string, pol: EvictionPolicy, ref: Ref & { observe(id: string, title: string, index: number, now: number): unknown }, seed: number): void {
  let step = 0
  for (const e of videoTrace(seed, 5000)) {
    step++
    pol.observe!(e.session, e.title, e.index, e.now)
    ref.observe(e.session, e.title, e.index, e.now)
    if (pol.has(e.key) !== ref.has(e.key)) return void t.fail(`${name} seed ${seed}: membership of ${e.key} differs at step ${step}`)
    if (pol.has(e.key)) { pol.hit(e.key); ref.hit(e.key); continue }
    pol.miss(e.key)
    ref.miss(e.key)
    const a = pol.insert(e.key, e.bytes)
    const b = ref.insert(e.key, e.bytes)
    if (a.join() !== b.join()) return void t.fail(`${name} seed ${seed}: step ${step} evicted [${a}] where the reference evicted [${b}]`)
    if (pol.size > pol.capacity) return void t.fail(`${name}: over capacity`)
  }
  t.pass(`${name} seed ${seed}: ${step} steps, same evictions`)
}

t.test('the session-aware and predictive policies match their reference implementations on random video traces', async t => {
  const opts = { typicalBytes: 10, sessionHorizon: 3, sessionIdleMs: 60 }
  for (const seed of [1, 2, 3, 4]) for (const cap of [40, 120, 300]) {
    const sess = new RefTracker(3, 60, Math.floor((cap / 10) * 4))
    driveSessions(t, `session cap ${cap}`, createPolicy('session', cap, opts),
      Object.assign(new RefS3(cap, k => sess.wanted(tierKeyToSession(k))), { observe: sess.observe.bind(sess) }), seed)
    driveSessions(t, `predictive cap ${cap}`, createPolicy('predictive', cap, opts), new RefPredictive(cap, 10, 3, 60), seed)
  }
})

t.test('victims names exactly what the next insert evicts, for every policy, and changes nothing', async t => {
  const opts = { typicalBytes: 10, sessionHorizon: 3, sessionIdleMs: 60 }
  for (const name of POLICY_NAMES) for (const seed of [1, 2, 3]) for (const cap of [40, 150]) {
    // twins: `a` is asked victims before every insert (and about other keys), `b` never
    const a = createPolicy(name, cap, opts), b = createPolicy(name, cap, opts)
    const r = rng(seed * 31)
    let checked = 0, evicting = 0, bad = ''
    for (const e of videoTrace(seed, 4000)) {
      for (const p of [a, b]) p.observe?.(e.session, e.title, e.index, e.now)
      if (a.has(e.key)) {
        if (a.victims(e.key, e.bytes).length !== 0) { bad = `${e.key} is held, yet victims names keys`; break }
        a.hit(e.key); b.hit(e.key); continue
      }
      a.miss(e.key); b.miss(e.key)
      if (r() < 0.5) a.victims(`m${Math.floor(r() * 12)}/${Math.floor(r() * 8)}/x`, r() < 0.5 ? 4 : 10) // an unrelated question
      const said = a.victims(e.key, e.bytes)
      const did = a.insert(e.key, e.bytes)
      const twin = b.insert(e.key, e.bytes)
      checked++
      if (did.length) evicting++
      if (said.join() !== did.join()) { bad = `insert ${checked} of ${e.key} evicted [${did}], victims said [${said}]`; break }
      if (twin.join() !== did.join()) { bad = `asking victims changed the policy: insert ${checked} evicted [${did}], its twin [${twin}]`; break }
    }
    if (bad) t.fail(`${name} cap ${cap} seed ${seed}: ${bad}`)
    else t.ok(evicting > 50, `${name} cap ${cap} seed ${seed}: ${checked} inserts, ${evicting} evicting, each as victims said`)
  }
  for (const name of POLICY_NAMES) {
    const p = createPolicy(name, 40, opts)
    t.same(p.victims('m1/0/x', 50), ['m1/0/x'], `${name}: a chunk larger than the tier is itself refused`)
  }
})
