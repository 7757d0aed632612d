import t from 'tap'
import { affinityScore, hash53, ownersOf, rankByAffinity } from './affinity.js'

const edges = (n: number, w = 1) => Array.from({ length: n }, (_, i) => ({ id: `edge-${i}`, weight: w }))
const keys = Array.from({ length: 20_000 }, (_, i) => `title-${i}`)

t.test('the same key ranks the same way for every caller, whatever the input order', async t => {
  const m = edges(8)
  const a = rankByAffinity('title-42', m).map(e => e.id)
  const b = rankByAffinity('title-42', [...m].reverse()).map(e => e.id)
  t.same(a, b)
  t.equal(new Set(a).size, 8)
  t.not(hash53('a'), hash53('b'))
})

t.test('equal weights share first places evenly', async t => {
  const m = edges(4)
  const count = new Map<string, number>()
  for (const k of keys) { const o = rankByAffinity(k, m)[0]!.id; count.set(o, (count.get(o) ?? 0) + 1) }
  for (const [id, c] of count) t.ok(Math.abs(c / keys.length - 0.25) < 0.02, `${id} owns ${c}`)
})

t.test('a member\'s share of first places follows its weight', async t => {
  const m = [{ id: 'big', weight: 3 }, { id: 'small-a', weight: 1 }, { id: 'small-b', weight: 1 }, { id: 'off', weight: 0 }]
  let big = 0, off = 0
  for (const k of keys) { const o = rankByAffinity(k, m)[0]!.id; if (o === 'big') big++; if (o === 'off') off++ }
  t.ok(Math.abs(big / keys.length - 0.6) < 0.02, `big owns ${big / keys.length}`)
  t.equal(off, 0)
  t.equal(affinityScore('k', 'off', 0), 0)
})

t.test('a member leaving moves only its own keys, each to the owner named second', async t => {
  const m = edges(6)
  const gone = 'edge-3'
  const rest = m.filter(e => e.id !== gone)
  let moved = 0
  for (const k of keys) {
    const before = rankByAffinity(k, m).map(e => e.id)
    const after = rankByAffinity(k, rest)[0]!.id
    if (before[0] === gone) { moved++; t.equal(after, before[1]) } else if (after !== before[0]) t.fail(`${k} moved from ${before[0]}`)
  }
  t.ok(Math.abs(moved / keys.length - 1 / 6) < 0.02, `moved ${moved}`)
})

t.test('a member joining takes keys only for itself', async t => {
  const m = edges(5)
  const grown = [...m, { id: 'edge-new', weight: 1 }]
  let taken = 0
  for (const k of keys) {
    const a = rankByAffinity(k, m)[0]!.id, b = rankByAffinity(k, grown)[0]!.id
    if (a !== b) { t.equal(b, 'edge-new'); taken++ }
  }
  t.ok(Math.abs(taken / keys.length - 1 / 6) < 0.02)
})

t.test('ownersOf takes the first k, bounded by the group', async t => {
  const m = edges(3)
  t.same(ownersOf('x', m, 2).map(e => e.id), rankByAffinity('x', m).slice(0, 2).map(e => e.id))
  t.equal(ownersOf('x', m, 10).length, 3)
  t.equal(ownersOf('x', m, -1).length, 0)
})
