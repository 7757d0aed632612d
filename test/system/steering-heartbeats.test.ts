import t from 'tap'
import { EDGE_TOKEN, TestCluster } from './harness.js'
import { startTestEdge, until } from '../helpers/edge.js'
import { heartbeat, routerCounter } from '../helpers/steering.js'

/**
 * Issue 17's heartbeat contract (docs/steering.md): an edge's site and
 * capacity in, its site's members out; absurd values refused by name and
 * counted.
 */
const good = { id: 'edge-a', url: 'http://edge-a.example:8080', networks: ['127.0.0.0/8'], regions: [], healthy: true, load: 0.2, freeBytes: 1e9, site: 'loop', capacityBytes: 2e9 }

t.test('absurd capacities and loads are refused 400 naming the field, counted by field, and change nothing', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1 })
  for (const [bad, field] of [
    [{ capacityBytes: 1e18 }, 'capacityBytes'],
    [{ capacityBytes: -5 }, 'capacityBytes'],
    [{ load: 1e6 }, 'load'],
    [{ freeBytes: 3e9 }, 'freeBytes'],
    [{ site: '../etc' }, 'site'],
  ] as const) {
    const r = await heartbeat(c.url, { ...good, ...bad })
    t.equal(r.status, 400, JSON.stringify(bad))
    t.equal(r.json.error.code, 'CDN_ERR_BAD_HEARTBEAT')
    t.match(r.json.error.message, new RegExp(`invalid heartbeat: ${field}: `), `the message names ${field}: ${r.json.error.message}`)
  }
  t.equal(await routerCounter(c, 'reelcdn_router_heartbeats_refused_total', 'reason="capacityBytes"'), 2)
  t.equal(await routerCounter(c, 'reelcdn_router_heartbeats_refused_total', 'reason="load"'), 1)
  t.equal(await routerCounter(c, 'reelcdn_router_heartbeats_refused_total', 'reason="freeBytes"'), 1)
  t.equal(await routerCounter(c, 'reelcdn_router_heartbeats_refused_total', 'reason="site"'), 1)
  t.same(c.router.edges.list(Date.now()), [], 'nothing registered')
  t.equal((await heartbeat(c.url, good, '')).status, 401, 'the credential is checked first')
  t.equal(await routerCounter(c, 'reelcdn_router_heartbeats_refused_total', 'reason="body"'), 0, 'and a 401 is not a refused body')
})

t.test('the answer lists the sender\'s site (members with weights) and hot titles; an edge with no site gets neither', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1 })
  const a = await heartbeat(c.url, good)
  t.equal(a.status, 200)
  t.same(a.json, { id: 'edge-a', accepted: true, site: { id: 'loop', members: [{ id: 'edge-a', url: good.url, weight: 2e9 }] }, hot: [] })
  await heartbeat(c.url, { ...good, id: 'edge-b', url: 'http://edge-b.example:8080', site: 'elsewhere' })
  const d = await heartbeat(c.url, { ...good, id: 'edge-d', url: 'http://edge-d.example:8080', capacityBytes: 0, freeBytes: 0 })
  t.same(d.json.site.members.map((m: any) => [m.id, m.weight]).sort(), [['edge-a', 2e9], ['edge-d', 1]], 'capacity 0 weighs 1; another site is not listed')
  const old = await heartbeat(c.url, { id: 'old', url: 'http://old.example:8080', networks: [], regions: [], healthy: true, load: 0, freeBytes: 0 })
  t.same(old.json, { id: 'old', accepted: true }, 'an edge from before issue 17: the answer it knew')
})

t.test('a real edge sends edge.site and its RAM + disk capacity', async t => {
  const c = await TestCluster.start(t, { shards: 1, copies: 1 })
  await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.heartbeatMs': 50, 'edge.id': 'edge-real', 'edge.site': 'loop' },
    { REELCDN_EDGE_TOKEN: EDGE_TOKEN })
  await until(() => c.router.edges.list(Date.now()).some(e => e.id === 'edge-real'), 'the edge\'s heartbeat')
  const e = c.router.edges.list(Date.now()).find(e => e.id === 'edge-real')!
  t.equal(e.site, 'loop')
  t.equal(e.capacityBytes, 64 * 1024 ** 2 + 256 * 1024 ** 2, 'the test edge\'s RAM + disk tiers')
})
