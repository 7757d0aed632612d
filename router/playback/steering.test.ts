import t from 'tap'
import { rankByAffinity } from '../../lib/affinity.js'
import type { RankedEdge } from './edge-registry.js'
import { HotTitles } from './hot-titles.js'
import { RecentLoad, Steering } from './steering.js'

const edge = (id: string, o: Partial<RankedEdge> = {}): RankedEdge => ({ id, url: `http://${id}.example`, local: true, load: 0, weight: 1, site: 's1', ...o })
const site = ['a', 'b', 'c', 'd'].map(id => edge(id))
const titles = Array.from({ length: 1000 }, (_, i) => `title-${i}`)
const loose = { policy: 'affinity' as const, loadFactor: 100, halfLifeMs: 300_000 }

t.test('a cold title goes to its first owner for every viewer, the next owners follow, then the far edges', async t => {
  const s = new Steering(loose, undefined)
  const far = edge('far', { local: false })
  for (const title of titles.slice(0, 50)) {
    const owners = rankByAffinity(title, site).map(e => e.id)
    for (const viewer of ['v1', 'v2', 'v3']) {
      const r = s.order(title, viewer, [...site, far], 0)
      t.same(r.edges.map(e => e.id), [...owners, 'far'])
      t.equal(r.choice, 'owner')
    }
  }
})

t.test('load steering and a client with no local edge keep the registry order', async t => {
  const ranked = [edge('x', { load: 0.1 }), edge('y', { load: 0.5 })]
  t.same(new Steering({ ...loose, policy: 'load' }, undefined).order('m', 'v', ranked, 0), { edges: ranked, choice: 'load' })
  const far = ranked.map(e => ({ ...e, local: false }))
  t.same(new Steering(loose, undefined).order('m', 'v', far, 0), { edges: far, choice: 'no_local' })
})

t.test('an edge leaving moves only the titles it owned, each to the next owner it had', async t => {
  const s = new Steering(loose, undefined)
  const before = new Map(titles.map(id => [id, s.order(id, 'v', site, 0).edges.map(e => e.id)]))
  const without = site.filter(e => e.id !== 'b')
  let moved = 0
  for (const id of titles) {
    const was = before.get(id)!
    const now = s.order(id, 'v', without, 0).edges[0]!.id
    if (was[0] === 'b') {
      moved++
      t.equal(now, was[1], `${id} goes to its second owner`)
    } else if (now !== was[0]) t.fail(`${id} moved from ${was[0]} to ${now}`)
  }
  t.ok(moved > 150 && moved < 350, `about a quarter moved: ${moved}`)
})

t.test('capacity weighs the share of titles an edge owns', async t => {
  const s = new Steering(loose, undefined)
  const weighted = [edge('big', { weight: 3e12 }), edge('small', { weight: 1e12 })]
  const big = titles.filter(id => s.order(id, 'v', weighted, 0).edges[0]!.id === 'big').length
  t.ok(big > 700 && big < 800, `3:1 capacity, ${big} of 1000 titles`)
})

t.test('bounded load: a hot title spills to its next owners, no edge above c x the mean (+1)', async t => {
  const c = 1.25
  const s = new Steering({ policy: 'affinity', loadFactor: c, halfLifeMs: 1e9 }, undefined)
  const counts = new Map<string, number>()
  const choices = new Map<string, number>()
  for (let i = 0; i < 2000; i++) {
    // half of all plays are one title, the rest spread over 500
    const title = i % 2 === 0 ? 'blockbuster' : titles[(i * 7) % 500]!
    const r = s.order(title, `viewer-${i}`, site, 0)
    counts.set(r.edges[0]!.id, (counts.get(r.edges[0]!.id) ?? 0) + 1)
    choices.set(r.choice, (choices.get(r.choice) ?? 0) + 1)
    const max = Math.max(...counts.values())
    const total = i + 1
    if (max > Math.ceil((c * total) / site.length)) t.fail(`play ${total}: an edge has ${max}, above ceil(${c} x ${total}/4)`)
  }
  t.ok((choices.get('over_bound') ?? 0) > 0, 'the bound moved plays')
  const spilled = s.spilled('s1', 0)
  t.ok(spilled.find(x => x.contentId === 'blockbuster')!.owners >= 2, `the blockbuster has owners past its first: ${JSON.stringify(spilled.slice(0, 5))}`)
  t.same(s.spilled('s2', 0), [], 'per site')
  t.same(s.spilled('s1', 1e9), [], 'forgotten after the load\'s half-life')
  t.ok(Math.max(...counts.values()) <= Math.ceil((c * 2000) / 4))
})

t.test('a saturated owner (heartbeat load >= 1) is passed over for the next', async t => {
  const s = new Steering(loose, undefined)
  const owners = rankByAffinity('m', site)
  const sick = site.map(e => e.id === owners[0]!.id ? { ...e, load: 1.2 } : e)
  const r = s.order('m', 'v', sick, 0)
  t.equal(r.edges[0]!.id, owners[1]!.id)
  t.equal(r.choice, 'over_bound')
  t.equal(r.edges[1]!.id, owners[0]!.id, 'still offered, next')
})

t.test('a hot title: its viewers spread over its first k owners, each viewer keeps its own', async t => {
  const s = new Steering(loose, { ownersOf: id => id === 'hot' ? 3 : 1 })
  const owners = rankByAffinity('hot', site).map(e => e.id)
  const seen = new Map<string, number>()
  for (let v = 0; v < 300; v++) {
    const first = s.order('hot', `v${v}`, site, 0).edges[0]!.id
    t.equal(s.order('hot', `v${v}`, site, 0).edges[0]!.id, first, 'same viewer, same owner')
    seen.set(first, (seen.get(first) ?? 0) + 1)
  }
  t.same([...seen.keys()].sort(), owners.slice(0, 3).sort(), 'the first three owners, not the fourth')
  for (const n of seen.values()) t.ok(n > 60, `even: ${[...seen.values()]}`)
})

t.test('owner count: k = ceil(s N / (c - 1 + s)), 1 for a cold title, at most N', async t => {
  t.equal(HotTitles.owners(0, 8, 1.25), 1)
  t.equal(HotTitles.owners(0.02, 8, 1.25), 1, 'a 2 % share fits one owner at 8 edges')
  t.equal(HotTitles.owners(0.1, 4, 1.25), 2)
  t.equal(HotTitles.owners(0.5, 4, 1.25), 3)
  t.equal(HotTitles.owners(1, 4, 1.25), 4)
  t.equal(HotTitles.owners(0.9, 1, 1.25), 1, 'one edge: one owner')
  // the rule's promise: an owner's share s/k + (1 - s)/N stays at or under c/N
  for (const s of [0.05, 0.1, 0.2, 0.33, 0.5, 0.8]) for (const n of [2, 4, 8, 16]) {
    const k = HotTitles.owners(s, n, 1.25)
    if (k < n) t.ok(s / k + (1 - s) / n <= 1.25 / n + 1e-12, `s=${s} n=${n} k=${k}`)
  }
  const demand = { titlePlays: () => [{ contentId: 'hot', plays: 600 }, { contentId: 'warm', plays: 100 }, { contentId: 'rare', plays: 10 }, ...titles.slice(0, 290).map(c => ({ contentId: c, plays: 1 }))] }
  const h = new HotTitles(demand, { window: '5m', minPlays: 20, loadFactor: 1.25 })
  // shares: hot 0.6, warm 0.1, rare below minPlays
  t.equal(h.ownersOf('hot', 4, 0), 3)
  t.equal(h.ownersOf('warm', 4, 0), 2)
  t.equal(h.ownersOf('rare', 4, 0), 1, 'under the minimum plays')
  t.same(h.hot(4, 0), [{ contentId: 'hot', owners: 3 }, { contentId: 'warm', owners: 2 }])
})

t.test('recent load decays with its half-life', async t => {
  const l = new RecentLoad(1000)
  l.add('e', 0, 8)
  t.equal(l.get('e', 1000), 4)
  t.equal(l.get('e', 3000), 1)
  l.add('e', 3000)
  t.equal(l.get('e', 3000), 2)
  t.equal(l.get('none', 0), 0)
})

t.test('owner counts are taken again every 10 s, or a second after a demand report', async t => {
  let plays = [{ contentId: 'a', plays: 100 }]
  let asked = 0
  const h = new HotTitles({ titlePlays: () => { asked++; return plays } }, { window: '5m', minPlays: 20, loadFactor: 1.25 })
  t.equal(h.ownersOf('a', 4, 0), 4, 'all the plays: every owner')
  plays = [{ contentId: 'a', plays: 100 }, { contentId: 'b', plays: 900 }]
  t.equal(h.ownersOf('a', 4, 5000), 4, 'kept')
  t.equal(h.ownersOf('a', 4, 10_000), 2, 'taken again after 10 s')
  h.invalidate()
  plays = [{ contentId: 'a', plays: 100 }]
  t.equal(h.ownersOf('a', 4, 10_500), 2, 'not within a second of the last')
  t.equal(h.ownersOf('a', 4, 11_000), 4, 'a second after: the report counts')
  t.equal(asked, 3)
})
