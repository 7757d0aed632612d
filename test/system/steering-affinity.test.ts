import t from 'tap'
import { rankByAffinity } from '../../lib/affinity.js'
import { TestCluster } from './harness.js'
import { firstEdges, heartbeat, playOrder, routerCounter, titles } from '../helpers/steering.js'

/**
 * Issue 17, steering with content affinity, through a real router: four
 * edges of one site register by heartbeats (capacities equal), titles exist
 * by their manifests, and /v1/play's first URL says where each viewer goes.
 *
 * The load bound (router.steeringLoadFactor) is set far above what these
 * plays reach: here the point is where affinity sends a title, and
 * steering-bounded.test.ts shows the bound.
 */
const SITE = ['edge-a', 'edge-b', 'edge-c', 'edge-d']
const members = SITE.map(id => ({ id, weight: 1e9 }))
const loose = { 'router.edgeSilenceMs': 3600_000, 'router.steeringLoadFactor': 100, 'router.manifestTtlMs': 3600_000 }

t.test('every viewer of a site gets a title\'s owner first while it is healthy, its next owner when it is not', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1, overrides: loose })
  for (const id of SITE) t.equal((await heartbeat(c.url, { id, site: 'loop', capacityBytes: 1e9 })).status, 200)
  t.equal((await heartbeat(c.url, { id: 'far', networks: ['203.0.113.0/24'] })).status, 200)
  const ids = await titles(c, 24)
  for (const id of ids) {
    const owners = rankByAffinity(id, members).map(m => m.id)
    for (const viewer of [undefined, 'alice', 'bob']) {
      t.same(await playOrder(c.url, id, viewer), [...owners, 'far', 'origin'], `${id} for ${viewer ?? 'an anonymous viewer'}: its owners, the far edge, the origin`)
    }
  }
  t.equal(await routerCounter(c, 'reelcdn_router_steered_total', 'choice="owner"'), 72)

  // one edge turns unhealthy: its titles go to their second owner, no other title moves
  const owned = (await firstEdges(c.url, ids))
  t.equal((await heartbeat(c.url, { id: 'edge-b', site: 'loop', capacityBytes: 1e9, healthy: false })).status, 200)
  const after = await firstEdges(c.url, ids)
  let moved = 0
  for (const id of ids) {
    if (owned.get(id) === 'edge-b') {
      moved++
      t.equal(after.get(id), rankByAffinity(id, members)[1]!.id, `${id} to its next owner`)
    } else t.equal(after.get(id), owned.get(id), `${id} stays`)
  }
  t.ok(moved > 0, `${moved} titles were edge-b's`)
  t.notOk([...after.values()].includes('edge-b'))
  // and back with its next healthy heartbeat
  await heartbeat(c.url, { id: 'edge-b', site: 'loop', capacityBytes: 1e9 })
  t.same(await firstEdges(c.url, ids), owned)
})

t.test('an edge leaving moves only the titles it owned, counted over 500 titles', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1, overrides: loose })
  for (const id of SITE) await heartbeat(c.url, { id, site: 'loop', capacityBytes: 1e9 })
  const ids = await titles(c, 500)
  const before = await firstEdges(c.url, ids)
  const share = new Map<string, number>()
  for (const e of before.values()) share.set(e, (share.get(e) ?? 0) + 1)
  t.same([...share.keys()].sort(), SITE, `every edge owns titles: ${JSON.stringify(Object.fromEntries(share))}`)
  // the farewell heartbeat of an edge shutting down
  await heartbeat(c.url, { id: 'edge-c', site: 'loop', capacityBytes: 1e9, healthy: false })
  const after = await firstEdges(c.url, ids)
  let moved = 0
  let movedOthers = 0
  for (const id of ids) {
    if (after.get(id) === before.get(id)) continue
    if (before.get(id) === 'edge-c') moved++
    else movedOthers++
  }
  t.equal(movedOthers, 0, 'no title of another edge moved')
  t.equal(moved, share.get('edge-c'), `all ${share.get('edge-c')} of edge-c's titles moved, nothing else`)
  t.ok(moved > 90 && moved < 160, `about a quarter: ${moved}`)
  // load steering, for comparison: every title goes to the same (least loaded, then first by id) edge
  const c2 = await TestCluster.start(t, { shards: 1, copies: 1, overrides: { ...loose, 'router.steering': 'load' } })
  for (const id of SITE) await heartbeat(c2.url, { id, site: 'loop', capacityBytes: 1e9 })
  const some = await titles(c2, 20)
  t.same(new Set((await firstEdges(c2.url, some)).values()), new Set(['edge-a']), 'load-only: one edge first for every title')
})
