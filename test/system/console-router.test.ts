import t from 'tap'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { request } from 'undici'
import { launch } from '../helpers/browser.js'
import { cell, figure, fitsWidth, openConsole, refresh } from '../helpers/console-page.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'
import { EDGE_TOKEN, TestCluster, TOKEN } from './harness.js'

/**
 * The router's status console (issue 18, docs/console.md): three shards, a
 * router, an edge sending heartbeats and demand reports, a little traffic
 * and a repair pass with one shard stopped (so chunks are under-replicated),
 * an upload held open mid-body; then the console in headless Chromium, its
 * figures read from the DOM and checked against the router's /metrics.
 */
const CS = 64 * 1024

t.test('the router console shows shards, replicas, edges, trending and ingests as /metrics and the router know them', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, copies: 2 })
  const bytes = titleBytes(5 * CS + 7, 'router-console')
  t.equal((await c.ingest('rc-title', bytes, { meta: { title: 'Router console' } })).status, 201)
  const edge = await startTestEdge(t, { url: c.url, token: TOKEN },
    { 'cluster.chunkSize': CS, 'edge.id': 'edge-a', 'edge.site': 'site-a', 'edge.heartbeatMs': 100, 'edge.demandReportMs': 100 },
    { REELCDN_EDGE_TOKEN: EDGE_TOKEN, REELCDN_EDGE_ADMIN_TOKEN: 'edge-admin' })
  t.equal((await get(`${edge.url}/v1/content/rc-title`)).body.length, bytes.length, 'played through the edge')
  await settled(edge)
  await until(async () => (await metric(c.url, 'reelcdn_router_edges', { state: 'live' })) === 1, 'the edge\'s heartbeat')
  await until(async () => ((await (await request(`${c.url}/v1/trending`)).body.json()) as { titles: unknown[] }).titles.length > 0, 'the demand report')

  // a shard that lost its disk, then a dry-run repair pass: the chunks it owned are under-replicated
  await c.stopShard(2)
  await c.startShard(2, { wipe: true })
  await c.router.cluster.health.checkAll()
  const pass = await request(`${c.url}/v1/cluster/repair?dryRun=true`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(pass.statusCode, 200, 'a repair pass ran')
  await pass.body.dump()

  // an upload held open: an ingest in progress
  const body = new PassThrough()
  const upload = request(`${c.url}/v1/content/rc-upload`, { method: 'PUT', body, headers: { authorization: `Bearer ${TOKEN}`, 'content-length': String(2 * CS) } })
  body.write(Buffer.alloc(CS + 1, 1))
  await until(() => c.router.server !== undefined && [...ingestsOf(c)].length === 1, 'the upload to start')

  const browser = await launch()
  t.teardown(() => browser.close())
  const page = await openConsole(browser, c.url, TOKEN)
  const shots = t.testdir()
  await page.screenshot({ path: join(shots, 'router-console.png'), fullPage: true })

  t.equal(await figure(page, 'shards.total'), 3)
  t.equal(await figure(page, 'shards.up'), await metric(c.url, 'reelcdn_router_shard_up'), 'shards up as /metrics has them')
  for (const [i, shard] of ['shard-1', 'shard-2', 'shard-3'].entries()) {
    t.equal(await cell(page, 'shards', i, 'id'), shard)
    t.equal(await cell(page, 'shards', i, 'state'), await metric(c.url, 'reelcdn_router_shard_up', { shard }) === 1 ? 'up' : 'down', `${shard} health`)
    if (i < 2) {
      t.equal(await cell(page, 'shards', i, 'storedBytes'), await metric(c.url, 'reelcdn_router_shard_stored_bytes', { shard }), `${shard} stored bytes`)
      t.equal(await cell(page, 'shards', i, 'chunks'), await metric(c.url, 'reelcdn_router_shard_chunks', { shard, state: 'ok' }), `${shard} chunks`)
    }
  }
  const under = await metric(c.url, 'reelcdn_router_replica_problems', { kind: 'under_replicated' })
  t.ok(under > 0, `chunks under-replicated (${under})`)
  t.equal(await figure(page, 'replicas.underReplicated'), under, 'under-replicated chunks as /metrics has them')
  t.equal(await figure(page, 'replicas.lost'), await metric(c.url, 'reelcdn_router_replica_problems', { kind: 'lost' }), 'lost chunks')
  t.equal(await figure(page, 'edges.live'), await metric(c.url, 'reelcdn_router_edges', { state: 'live' }), 'live edges')
  t.equal(await cell(page, 'edges', 0, 'id'), 'edge-a')
  t.equal(await cell(page, 'edges', 0, 'state'), 'live')
  t.equal(await cell(page, 'edges', 0, 'site'), 'site-a', 'the site its heartbeat named')
  // and the edge's own console knows the site from the heartbeat's answer
  const es = await (await request(`${edge.url}/status.json`, { headers: { authorization: 'Bearer edge-admin' } })).body.json() as
    { sections: { key: string; figures?: { key: string; value: unknown }[] }[] }
  const up = es.sections.find(x => x.key === 'upstream')!.figures!
  t.same(up.filter(f => f.key === 'site' || f.key === 'siteMembers').map(f => f.value), ['site-a', 1], 'edge: its site, of one edge')
  t.ok((await cell(page, 'edges', 0, 'heartbeatAgeMs') as number) < 5000, 'a recent heartbeat')
  t.equal(await cell(page, 'trending', 0, 'contentId'), 'rc-title', 'the title played trends')
  t.equal(await cell(page, 'trending', 0, 'title'), 'Router console')
  t.equal(await figure(page, 'traffic.bytesServed'), await metric(c.url, 'reelcdn_router_bytes_served_total'), 'bytes to clients')
  t.equal(await cell(page, 'ingests', 0, 'contentId'), 'rc-upload', 'the upload in progress')
  t.equal(await cell(page, 'ingests', 0, 'expectedBytes'), 2 * CS)

  // the upload ends: gone from the list at the next refresh
  body.end(Buffer.alloc(CS - 1, 1))
  t.equal((await upload).statusCode, 201, 'the upload finished')
  await refresh(page)
  t.equal(await page.getAttribute('[data-table="ingests"]', 'data-rows'), '0', 'no ingest in progress')

  // a shard stops: down at the next health check and refresh
  await c.stopShard(2)
  await c.router.cluster.health.checkAll()
  await refresh(page)
  t.equal(await cell(page, 'shards', 2, 'state'), 'down', 'the stopped shard is down')
  t.equal(await figure(page, 'shards.up'), await metric(c.url, 'reelcdn_router_shard_up'), 'shards up as /metrics has them')

  const phone = await openConsole(browser, c.url, TOKEN, { width: 390, height: 844 })
  await phone.screenshot({ path: join(shots, 'router-console-phone.png'), fullPage: true })
  t.ok(await fitsWidth(phone), 'fits a 390 px wide screen')
  t.comment(`screenshots in ${t.testdirName}`)
})

t.test('the router console refuses its figures without the admin token', async t => {
  const c = await TestCluster.start(t, { chunkSize: CS, shards: 1, copies: 1 })
  t.equal((await get(`${c.url}/`)).status, 200, 'the page itself is public')
  const before = await metric(c.url, 'reelcdn_http_client_errors_total', { reason: 'unauthorized' })
  for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
    const res = await request(`${c.url}/status.json`, { headers })
    t.equal(res.statusCode, 401)
    t.equal(((await res.body.json()) as { error: { code: string } }).error.code, 'CDN_ERR_UNAUTHORIZED')
  }
  t.equal(await metric(c.url, 'reelcdn_http_client_errors_total', { reason: 'unauthorized' }) - before, 2, 'each refusal counted')
  const ok = await request(`${c.url}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(ok.statusCode, 200)
  t.equal(((await ok.body.json()) as { service: string }).service, 'router')
})

function ingestsOf(c: TestCluster): Iterable<unknown> {
  return (c.router.server as unknown as { d: { ingestor: { inProgress: Set<unknown> } } }).d.ingestor.inProgress
}
