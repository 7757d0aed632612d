import t from 'tap'
import { LruPolicy } from './lru-policy.js'
import { createPolicy } from './policy.js'

/** The simplest correct LRU over sizes, to compare the real policy against on random traces. */
class ReferenceLru {
  order: [string, number][] = []
  constructor(readonly capacity: number) {}
  hit(key: string) {
    const i = this.order.findIndex(e => e[0] === key)
    if (i >= 0) this.order.push(...this.order.splice(i, 1))
  }
  insert(key: string, bytes: number): string[] {
    if (bytes > this.capacity) { this.remove(key); return [key] }
    this.remove(key)
    this.order.push([key, bytes])
    const out: string[] = []
    while (this.order.reduce((s, e) => s + e[1], 0) > this.capacity) out.push(this.order.shift()![0])
    return out
  }
  remove(key: string) {
    this.order = this.order.filter(e => e[0] !== key)
  }
}

t.test('evicts the least recently used to make room, and says which', async t => {
  const p = new LruPolicy(300)
  t.same(p.insert('a', 100), [])
  t.same(p.insert('b', 100), [])
  t.same(p.insert('c', 100), [])
  p.hit('a')
  t.same(p.insert('d', 100), ['b'], 'b is the coldest once a was read')
  t.same(p.insert('e', 200), ['c', 'a'])
  t.equal(p.size, 300)
  t.equal(p.count, 2)
})

t.test('refuses what cannot fit at all; capacity 0 refuses everything', async t => {
  const p = new LruPolicy(100)
  t.same(p.insert('big', 101), ['big'])
  t.notOk(p.has('big'))
  const off = createPolicy('lru', 0)
  t.same(off.insert('a', 1), ['a'])
  t.equal(off.size, 0)
  t.throws(() => p.insert('x', 0), /positive integer/)
})

t.test('remove frees room; unknown keys are no-ops', async t => {
  const p = new LruPolicy(200)
  p.insert('a', 150)
  p.remove('a')
  p.remove('nope')
  t.same(p.insert('b', 200), [])
})

t.test('same evictions as a reference LRU on random traces, never over capacity', async t => {
  let seed = 42
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  for (let trace = 0; trace < 20; trace++) {
    const cap = 1000 + rnd(4000)
    const p = new LruPolicy(cap)
    const ref = new ReferenceLru(cap)
    for (let i = 0; i < 400; i++) {
      const key = `k${rnd(40)}`
      const op = rnd(10)
      if (op < 5) {
        if (p.has(key)) { p.hit(key); ref.hit(key) } else {
          const size = 1 + rnd(900)
          t.same(p.insert(key, size), ref.insert(key, size), `trace ${trace} op ${i}`)
        }
      } else if (op < 6) { p.remove(key); ref.remove(key) } else { p.hit(key); ref.hit(key) }
      if (p.size > cap) t.fail(`over capacity: ${p.size} > ${cap}`)
    }
  }
})

t.test('victims names what an insert would evict, least recent first, without touching recency', async t => {
  const p = new LruPolicy(300)
  p.insert('a', 100)
  p.insert('b', 100)
  p.insert('c', 50)
  p.hit('a')
  t.same(p.victims('d', 50), [], 'fits in free space')
  t.same(p.victims('d', 100), ['b'])
  t.same(p.victims('d', 250), ['b', 'c', 'a'])
  t.same(p.victims('a', 250), [], 'a key held already evicts nothing')
  t.same(p.insert('d', 100), ['b'], 'the insert evicts exactly what victims said')
  t.same(p.victims('e', 400), ['e'], 'larger than the tier: the chunk itself is refused, nothing evicted')
})
