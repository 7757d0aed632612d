import t from 'tap'
import { join } from 'node:path'
import { SLICES, Trending, parseDemandReport, sliceOf } from './trending.js'

const MIN = 60_000
const t0 = 1_800_000_000_000
const slices = (opening: number, rest: number) => Array.from({ length: SLICES }, (_, i) => (i === 0 ? opening : rest))

t.test('titles rank by plays in each window, with positions', async t => {
  const tr = new Trending(join(t.testdir(), 'trending.sqlite'), 'r1')
  t.teardown(() => tr.close(t0))
  tr.record({ edgeId: 'e1', titles: [{ contentId: 'old-hit', plays: 50, slices: slices(40, 1) }] }, t0)
  tr.record({ edgeId: 'e1', titles: [{ contentId: 'new', plays: 10 }, { contentId: 'old-hit', plays: 1 }] }, t0 + 55 * MIN)
  t.same(tr.top('5m', t0 + 56 * MIN, 10), [{ contentId: 'new', plays: 10 }, { contentId: 'old-hit', plays: 1 }])
  t.same(tr.top('1h', t0 + 56 * MIN, 1), [{ contentId: 'old-hit', plays: 51 }])
  t.same(tr.top('24h', t0 + 56 * MIN, 10, id => id !== 'old-hit'), [{ contentId: 'new', plays: 10 }], 'filtered')
  const pos = tr.positions('old-hit', t0 + MIN)!
  t.ok(pos[0]! > 0.6, 'the opening slice holds most reads')
  t.equal(tr.positions('new', t0), null)
  t.equal(sliceOf(0, 10), 0)
  t.equal(sliceOf(9, 10), 18)
  t.equal(sliceOf(5, 1), 19)
})

t.test('a restart keeps the counts, and peers merge without double counting', async t => {
  const dir = t.testdir()
  const file = join(dir, 'trending.sqlite')
  let tr = new Trending(file, 'r1')
  tr.record({ edgeId: 'e1', titles: [{ contentId: 'film', plays: 7 }] }, t0)
  const peer = new Trending(join(dir, 'peer.sqlite'), 'r2')
  peer.record({ edgeId: 'e2', titles: [{ contentId: 'film', plays: 5 }] }, t0)
  const peerState = peer.own.snapshot()
  tr.mergePeer('r2', t0, peerState)
  tr.mergePeer('r2', t0, peerState)
  t.equal(tr.plays('film', '1h', t0 + MIN), 12)
  tr.close(t0 + MIN)
  peer.close(t0)
  tr = new Trending(file, 'r1')
  t.teardown(() => tr.close(t0))
  t.equal(tr.plays('film', '1h', t0 + 2 * MIN), 12, 'own and peer counts survive the restart')
  t.equal(tr.plays('film', '1h', t0 + 62 * MIN), 0, 'and still slide out on time')
})

t.test('demand reports are validated by field', async t => {
  t.throws(() => parseDemandReport({ edgeId: 'e', titles: [{ contentId: '..', plays: 1 }] }), /titles\.0\.contentId/)
  t.throws(() => parseDemandReport({ edgeId: 'e', titles: [{ contentId: 'a', plays: -1 }] }), /plays/)
  t.throws(() => parseDemandReport({ edgeId: 'e', titles: [{ contentId: 'a', plays: 1, slices: [1] }] }), /slices/)
  t.ok(parseDemandReport({ edgeId: 'e', titles: [] }))
})

t.test('an adaptive title\'s counts per rendition, next to reports of the old shape', async t => {
  const tr = new Trending(join(t.testdir(), 'trending.sqlite'), 'r1')
  t.teardown(() => tr.close(t0))
  tr.record(parseDemandReport({ edgeId: 'e1', titles: [{ contentId: 'abr', plays: 5, slices: slices(4, 0), renditions: [
    { id: 'v720', plays: 4, slices: slices(30, 0) }, { id: 'v360', plays: 2, slices: slices(10, 0) }, { id: 'a128', plays: 5 }] }] }), t0)
  tr.record(parseDemandReport({ edgeId: 'old-edge', titles: [{ contentId: 'abr', plays: 1, slices: slices(1, 0) }, { contentId: 'film', plays: 3 }] }), t0)
  t.same(tr.top('1h', t0 + MIN, 10), [{ contentId: 'abr', plays: 6 }, { contentId: 'film', plays: 3 }], 'renditions are no titles')
  t.equal(tr.positions('abr', t0)![0], 1, 'the title\'s own positions as before')
  const r = tr.renditions(new Set(['abr', 'film']), '1h', t0 + MIN)
  t.same([...r.keys()], ['abr'], 'only titles with counts per rendition')
  t.same(r.get('abr'), [{ id: 'a128', plays: 5, reads: 0 }, { id: 'v360', plays: 2, reads: 10 }, { id: 'v720', plays: 4, reads: 30 }])
  t.same(Object.keys(tr.own.snapshot()).filter(k => k.includes('#r:')).sort(), ['abr#r:a128', 'abr#r:v360', 'abr#r:v360#reads', 'abr#r:v720', 'abr#r:v720#reads'],
    'two keys a rendition at most: its plays and its reads, not 20 slices')
  t.throws(() => parseDemandReport({ edgeId: 'e', titles: [{ contentId: 'a', plays: 1, renditions: [{ id: 'V 720', plays: 1 }] }] }), /renditions\.0\.id/)
  t.throws(() => parseDemandReport({ edgeId: 'e', titles: [{ contentId: 'a', plays: 1, renditions: [{ id: 'v', plays: 1, slices: [1] }] }] }), /slices/)
  // a router from before issue 15 merging this one's state sees no new title
  const old = Object.keys(tr.own.snapshot()).filter(k => !k.includes('#'))
  t.same(old.sort(), ['abr', 'film'], 'every key of a rendition has a #, which older routers skip')
})
