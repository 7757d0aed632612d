import t, { type Test } from 'tap'
import type { EvictionPolicy } from './policy.js'
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
  constructor(private cap: number) {}
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
        if (e.f >= 1) this.m.push({ k: e.k, b: e.b, f: 0 })
        else {
          out.push(e.k)
          this.g.push({ k: e.k, b: e.b })
          while (this.sum(this.g) > this.cap - smallCap) this.g.shift()
        }
      } else {
        for (;;) {
          const e = this.m.shift()!
          if (e.f > 0) { e.f--; this.m.push(e); continue }
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
