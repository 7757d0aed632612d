import t from 'tap'
import { createPolicy, POLICY_NAMES } from './policy.js'

/**
 * `resize` (a config reload changing a tier's size): every policy, on a
 * random trace, shrinks to within the new capacity by evicting exactly the
 * keys it returns, keeps the rest, and goes on inserting within the new bound;
 * growing evicts nothing. LRU's victims are the least recently used ones.
 */
const MB = 1024 ** 2
const key = (i: number) => `film/${i % 40}/${'a'.repeat(8)}${i}`

for (const name of POLICY_NAMES) {
  t.test(`${name}: shrinking evicts exactly what it returns, down to the new size; growing evicts nothing`, async t => {
    const p = createPolicy(name, 16 * MB, { typicalBytes: MB })
    let seed = 7
    const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff }
    const held = new Set<string>()
    for (let n = 0; n < 400; n++) {
      const k = key(Math.floor(rand() * 60))
      p.observe?.('s1', 'film', n % 40, n)
      if (held.has(k)) { p.hit(k); continue }
      p.miss(k)
      for (const d of p.insert(k, MB)) held.delete(d)
      if (p.has(k)) held.add(k)
    }
    const before = [...held].filter(k => p.has(k))
    t.equal(before.length, held.size, 'the tier and the policy agree before')
    const dropped = p.resize(5 * MB)
    t.equal(p.capacity, 5 * MB)
    t.ok(p.size <= 5 * MB, `size ${p.size} within the new capacity`)
    t.ok(dropped.every(k => !p.has(k)), 'every returned key has left')
    t.equal(new Set(dropped).size, dropped.length, 'no key returned twice')
    t.same(before.filter(k => !dropped.includes(k)).sort(), before.filter(k => p.has(k)).sort(), 'nothing left unreported')
    for (let n = 0; n < 50; n++) p.insert(key(100 + n), MB)
    t.ok(p.size <= 5 * MB, 'inserts stay within the new size')
    t.same(p.resize(32 * MB), [], 'growing evicts nothing')
    for (let n = 0; n < 20; n++) p.insert(key(200 + n), MB)
    t.ok(p.size > 5 * MB && p.size <= 32 * MB, `the room is used (${p.size / MB} MiB)`)
  })
}

t.test('lru: shrinking drops the least recently used first', async t => {
  const p = createPolicy('lru', 4 * MB)
  for (const k of ['a', 'b', 'c', 'd']) p.insert(k, MB)
  p.hit('a')
  t.same(p.resize(2 * MB), ['b', 'c'])
  t.ok(p.has('a') && p.has('d'))
})
