import t from 'tap'
import { rankByAffinity } from '../../lib/affinity.js'
import type { Deployment } from './deployment.js'
import { Model, type ModelOptions } from './engine.js'
import { summarize } from './report.js'
import type { Session } from './sessions.js'

const MIN = 60_000

/** One site of `edges` equal edges of `cap` chunks; titles of the given lengths. */
function site(edges: number, cap: number, titles: number[]): Deployment {
  return {
    chunkBytes: 64 * 1024 ** 2, titles: Int32Array.from(titles),
    sites: [{ id: 's0', viewers: 1, edges: Array.from({ length: edges }, (_, e) => ({ id: `s0-e${e}`, capacityChunks: cap, weight: cap })) }],
  }
}

function options(o: Partial<ModelOptions>): ModelOptions {
  return { steering: 'load', rangeChunks: 0, bound: 1.25, policy: 'lru', peerFill: false, prefill: 0, prefillSiteAware: true,
    failures: [], chunkMs: MIN, windowMs: 5 * MIN, warmupMs: 0, ...o }
}

/**
 * Sessions every 30 s, each reading both chunks of a 2-chunk title, one a
 * minute: at each arrival exactly one other session is active, so `load`
 * alternates edges. Titles come in pairs 0,0,1,1,2,2,3,3,0,0,...
 */
function pairs(n: number): Session[] {
  return Array.from({ length: n }, (_, i) => ({ at: 30_000 * (i + 1), site: 0, title: (i >> 1) % 4, first: 0, count: 2 }))
}

t.test('on a tiny catalog, affinity keeps each title on one edge: 0.75 against load-only\'s 0', async t => {
  // owners of t0..t3 over s0-e0/s0-e1 (lib/affinity.ts): e0, e1, e0, e1, two titles (4 chunks) each
  const m2 = [{ id: 's0-e0', weight: 4 }, { id: 's0-e1', weight: 4 }]
  t.same([0, 1, 2, 3].map(x => rankByAffinity(`t${x}`, m2)[0]!.id), ['s0-e0', 's0-e1', 's0-e0', 's0-e1'])
  const dep = site(2, 4, [2, 2, 2, 2])
  // load: each edge sees all four titles in turn (8 chunks through 4 of LRU): every read misses
  const load = summarize(...run(dep, options({ steering: 'load' }), pairs(16)))
  t.equal(load.overall.requests, 32)
  t.equal(load.overall.byteHitRatio, 0)
  // affinity: each edge holds its two titles; only the 8 first reads miss
  const aff = summarize(...run(dep, options({ steering: 'affinity' }), pairs(16)))
  t.equal(aff.overall.byteHitRatio, 24 / 32)
  // the ideal: one edge with both edges' room
  const one = summarize(...run(site(1, 8, [2, 2, 2, 2]), options({ steering: 'load' }), pairs(16)))
  t.equal(one.overall.byteHitRatio, 24 / 32)
})

function run(dep: Deployment, o: ModelOptions, sessions: Session[]) {
  const m = new Model(dep, o)
  return [m, m.run(sessions)] as const
}

t.test('peer fill: a chunk costs the origin once per site, the other edge gets it from its owner', async t => {
  const dep = site(2, 4, [2])
  const sessions = Array.from({ length: 10 }, (_, i) => ({ at: 30_000 * (i + 1), site: 0, title: 0, first: 0, count: 2 }))
  const without = summarize(...run(dep, options({ steering: 'load' }), sessions))
  t.equal(without.overall.originBytes / dep.chunkBytes, 4, 'each edge fetches both chunks')
  const withPeer = summarize(...run(dep, options({ steering: 'load', peerFill: true }), sessions))
  t.equal(withPeer.overall.originBytes / dep.chunkBytes, 2, 'both chunks once')
  t.equal(withPeer.overall.peerBytes / dep.chunkBytes, 2, 'the non-owner\'s two misses came from the owner')
  t.equal(withPeer.overall.byteHitRatio, 18 / 20)
})

t.test('an edge failing moves only the titles it owned, to their next owners', async t => {
  const titles = 200
  const dep = site(4, 50, Array.from({ length: titles }, () => 1))
  const members = dep.sites[0]!.edges.map((e, i) => ({ id: e.id, weight: e.weight, i }))
  const owner = (x: number) => rankByAffinity(`t${x}`, members)
  const owned = Array.from({ length: titles }, (_, x) => owner(x)[0]!.i).filter(e => e === 1).length
  t.ok(owned > 30 && owned < 70, `edge 1 owns ${owned} of ${titles}`)
  // every title read once before the failure at 500 min and once after
  const sessions: Session[] = []
  for (let round = 0; round < 2; round++) for (let x = 0; x < titles; x++) sessions.push({ at: round * 1000 * MIN + x * MIN + 1, site: 0, title: x, first: 0, count: 1 })
  const before = new Map<number, number>()
  const after = new Map<number, number>()
  const m = new Model(dep, options({ steering: 'affinity', failures: [{ kind: 'edge', site: 0, edge: 1, atMs: 500 * MIN, label: 'edge s0:1' }],
    onRead: (at, title, _i, e) => (at < 500 * MIN ? before : after).set(title, e) }))
  const r = summarize(m, m.run(sessions))
  let moved = 0
  for (let x = 0; x < titles; x++) {
    if (before.get(x) === 1) { moved++; t.equal(after.get(x), owner(x)[1]!.i, `t${x} goes to its second owner`) } else t.equal(after.get(x), before.get(x), `t${x} stays`)
  }
  t.equal(moved, owned)
  t.equal(r.failures[0]!.keysMoved, owned, 'the report counts the same titles')
  t.equal(r.failures[0]!.movedSessions, 0, 'no session was active on it at the time')
})

t.test('affinity+hot: a hot title spreads over its next owners and no edge takes a session above the bound', async t => {
  const dep = site(4, 100, [200, 200, 200])
  // 100 viewers of title 0 arrive a second apart and stay (200 chunks): no one leaves while they arrive
  const sessions: Session[] = Array.from({ length: 100 }, (_, i) => ({ at: 1000 * (i + 1), site: 0, title: 0, first: 0, count: 200 }))
  sessions.push({ at: 200_000, site: 0, title: 1, first: 0, count: 1 })
  const edgesOf = (steering: 'affinity' | 'affinity+hot') => {
    let worst = 0
    let cold = -1
    const m = new Model(dep, options({ steering, onRead: (at, title, _i, e) => {
      if (title === 1) cold = e
      if (at >= 200_000) return // the crowd leaves afterwards, oldest first: nothing steers then
      const total = m.siteActive[0]!
      worst = Math.max(worst, m.active[e]! - Math.ceil(1.25 * total / 4))
    } }))
    m.run(sessions.slice())
    return { worst, cold, m }
  }
  const hot = edgesOf('affinity+hot')
  t.ok(hot.worst <= 0, `no edge above ceil(1.25 × mean) at any read (worst excess ${hot.worst})`)
  const plain = edgesOf('affinity')
  t.ok(plain.worst > 0, 'plain affinity puts the whole crowd on one edge')
  const owners = rankByAffinity('t1', dep.sites[0]!.edges.map((e, i) => ({ id: e.id, weight: e.weight, i })))
  t.equal(hot.cold, owners[0]!.i, 'a cold title stays on its first owner')
})

t.test('chunk-range keys give each range of a title its own owners', async t => {
  const dep = site(4, 100, [40])
  const served = new Set<number>()
  const m = new Model(dep, options({ steering: 'affinity', rangeChunks: 4, onRead: (_at, _x, _i, e) => served.add(e) }))
  m.run([{ at: 1, site: 0, title: 0, first: 0, count: 40 }])
  t.ok(served.size > 1, `one viewer's ten ranges were served by ${served.size} edges`)
  t.equal(m.keys.count, 10)
})

t.test('bad options are refused by name', async t => {
  const dep = site(2, 4, [2])
  t.throws(() => new Model(dep, options({ policy: 'fifo' })), /unknown eviction policy "fifo"; known: lru/)
  t.throws(() => new Model(dep, options({ steering: 'random' as never })), /unknown steering "random"/)
  t.throws(() => new Model(dep, options({ bound: 0.5 })), /load bound to be a number of at least 1/)
  t.throws(() => new Model(dep, options({ failures: [{ kind: 'edge', site: 0, edge: 7, atMs: 0, label: 'edge s0:7' }] })), /failure edge s0:7: no such edge/)
})

t.test('site-aware prefill gives each edge the titles it owns: twice the distinct titles of two edges filling the same ones', async t => {
  const dep = site(2, 4, [2, 2, 2, 2])
  const held = (m: Model) => new Set([0, 1, 2, 3].flatMap(x => [0, 1].map(i => m.chunkKeyOf(x, i))).filter(k => m.caches.some(c => c.has(k)))).size
  const siteAware = new Model(dep, options({ steering: 'affinity', prefill: 1, prefillSiteAware: true }))
  const each = new Model(dep, options({ steering: 'affinity', prefill: 1, prefillSiteAware: false }))
  t.equal(held(siteAware), 8, 'all four titles (owners e0: t0 t2, e1: t1 t3)')
  t.equal(held(each), 4, 'the top two titles, twice')
  t.equal(siteAware.tally.prefillChunks, 8)
  const r = summarize(siteAware, siteAware.run(pairs(16)))
  t.equal(r.overall.byteHitRatio, 1, 'nothing left to fetch')
})

t.test('a site whose edges have all failed sends its viewers to the next site', async t => {
  const dep: Deployment = { chunkBytes: 64 * 1024 ** 2, titles: Int32Array.from([1, 1]), sites: [0, 1].map(s => ({
    id: `s${s}`, viewers: 1, edges: [0, 1].map(e => ({ id: `s${s}-e${e}`, capacityChunks: 2, weight: 2 })) })) }
  const served: number[] = []
  const m = new Model(dep, options({ steering: 'affinity', failures: [0, 1].map(e => ({ kind: 'edge' as const, site: 0, edge: e, atMs: 10 * MIN, label: `edge s0:${e}` })),
    onRead: (at, _x, _i, e) => { if (at > 10 * MIN) served.push(e) } }))
  const r = summarize(m, m.run([{ at: 20 * MIN, site: 0, title: 0, first: 0, count: 1 }, { at: 21 * MIN, site: 0, title: 1, first: 0, count: 1 }]))
  t.same(served.map(e => m.edgeSite[e]), [1, 1], 'served by site s1')
  t.equal(r.sites[1]!.requests, 2)
})
