import t from 'tap'
import { request } from 'undici'
import { rankByAffinity } from '../../lib/affinity.js'
import { EDGE_TOKEN, TestCluster } from './harness.js'
import { heartbeat, playOrder, routerCounter, titles } from '../helpers/steering.js'

/**
 * Issue 17, hot titles and the load bound, through a real router with its
 * defaults (router.steeringLoadFactor c = 1.25): four edges of one site, one
 * title with half of all plays and many cold ones. No edge may come first in
 * more than ceil(c × plays so far / 4) answers, at any point of the run.
 */
const SITE = ['edge-a', 'edge-b', 'edge-c', 'edge-d']
const C = 1.25

t.test('skewed demand: the hot title gets three owners, no edge above the load bound, the heartbeat answer says so', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1, overrides: { 'router.edgeSilenceMs': 3600_000, 'router.manifestTtlMs': 3600_000 } })
  const cold = await titles(c, 40, 'cold-')
  await c.ingest('hot', Buffer.alloc(1000, 1))
  // trending: the hot title has half of all plays (s = 0.5): k = ceil(0.5 x 4 / (1.25 - 1 + 0.5)) = 3 owners
  const report = { edgeId: 'edge-a', titles: [{ contentId: 'hot', plays: 40 }, ...cold.map(contentId => ({ contentId, plays: 1 }))] }
  const res = await request(`${c.url}/v1/demand`, { method: 'POST', body: JSON.stringify(report),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${EDGE_TOKEN}` } })
  t.equal(res.statusCode, 200)
  await res.body.text()
  // the router takes the shares again at most a second after a report: the site registers after it, so its first answers see it
  for (const id of SITE) await heartbeat(c.url, { id, site: 'loop', capacityBytes: 1e9 })

  const hb = await heartbeat(c.url, { id: 'edge-a', site: 'loop', capacityBytes: 1e9 })
  t.same(hb.json.site.members.map((m: any) => m.id).sort(), SITE, 'the site: every live member, the sender included')
  t.same(hb.json.site.members[0], { id: hb.json.site.members[0].id, url: `http://${hb.json.site.members[0].id}.example:8080`, weight: 1e9 })
  t.same(hb.json.hot, [{ contentId: 'hot', owners: 3 }], 'only the hot title, with its owner count')

  const counts = new Map<string, number>(SITE.map(id => [id, 0]))
  const hotTo = new Map<string, number>()
  let worst = 0
  const plays = 400
  for (let i = 0; i < plays; i++) {
    const hot = i % 2 === 0
    const first = (await playOrder(c.url, hot ? 'hot' : cold[(i * 7) % cold.length]!, `viewer-${i}`))[0]!
    counts.set(first, counts.get(first)! + 1)
    if (hot) hotTo.set(first, (hotTo.get(first) ?? 0) + 1)
    worst = Math.max(worst, Math.max(...counts.values()) - Math.ceil((C * (i + 1)) / SITE.length))
  }
  const max = Math.max(...counts.values())
  t.ok(worst <= 0, `no edge ever above the bound (worst margin ${worst}); final ${JSON.stringify(Object.fromEntries(counts))}`)
  t.ok(max / (plays / SITE.length) <= C, `max/mean ${(max / (plays / SITE.length)).toFixed(3)} <= ${C}`)
  const owners = rankByAffinity('hot', SITE.map(id => ({ id, weight: 1e9 }))).map(e => e.id)
  t.ok(owners.slice(0, 3).every(id => (hotTo.get(id) ?? 0) >= plays / 2 / 3 / 2), `the hot title spread over its first three owners: ${JSON.stringify(Object.fromEntries(hotTo))}`)
  t.ok(await routerCounter(c, 'reelcdn_router_steered_total', 'choice="hot_owner"') > 0, 'counted: hot owners')
  for (const id of SITE)
    t.equal(await routerCounter(c, 'reelcdn_router_plays_steered_total', `edge="${id}"`), counts.get(id), `${id}'s plays, as its metric counts them`)
  // titles the bound sent past their owners are in the site's hot list too, so the edges agree with where viewers went
  const later = (await heartbeat(c.url, { id: 'edge-b', site: 'loop', capacityBytes: 1e9 })).json.hot as { contentId: string; owners: number }[]
  const spilled = c.router.steering.spilled('loop', Date.now())
  t.ok(later.find(h => h.contentId === 'hot')!.owners >= 3, 'the hot title keeps at least its three owners')
  for (const s of spilled) t.ok(later.some(h => h.contentId === s.contentId && h.owners >= s.owners), `${s.contentId}, spilled to ${s.owners} owners, is listed`)
  t.ok(later.every(h => h.owners > 1 && h.owners <= SITE.length), `${later.length} hot titles, ${spilled.length} of them spilled by the bound`)
  t.match((await c.get('/metrics')).body.toString(), /reelcdn_router_steering_hot_titles\{service="router"\} 1\n/, 'one title with enough plays to be hot')
})

t.test('load steering, for comparison: the same skew puts every play on one edge', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1, overrides: { 'router.edgeSilenceMs': 3600_000, 'router.steering': 'load' } })
  for (const id of SITE) await heartbeat(c.url, { id, site: 'loop', capacityBytes: 1e9 })
  await c.ingest('hot', Buffer.alloc(1000, 1))
  const firsts = new Set<string>()
  for (let i = 0; i < 20; i++) firsts.add((await playOrder(c.url, 'hot', `viewer-${i}`))[0]!)
  // heartbeats are the only load it knows, and they said 0 for all: the first by id, every time
  t.same([...firsts], ['edge-a'])
  t.equal(await routerCounter(c, 'reelcdn_router_steered_total', 'choice="load"'), 20)
})
