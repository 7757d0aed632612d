import t from 'tap'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { launch } from '../helpers/browser.js'
import { cell, figure, openConsole } from '../helpers/console-page.js'
import { get, metric, settled, until } from '../helpers/edge.js'
import { titleBytes } from '../helpers/titles.js'
import { installSecrets, startSampleCluster } from '../helpers/deploy.js'

/**
 * Issue 18's acceptance for the console: the services started from the
 * sample configs (deploy/config, as test/system/ops-samples.test.ts starts
 * them: paths moved into the test directory, ports and shard addresses
 * changed), a title ingested and read through the edge, then each service's
 * console rendered in headless Chromium with the token its sample names, and
 * the figures on it checked against that service's /metrics.
 */
t.test('each console, on services started from the sample configs, shows what /metrics has', async t => {
  const dir = t.testdir()
  const secrets = await installSecrets(dir)
  const local = { 'log.level': 'silent', 'http.shutdownGraceMs': 0 }
  const { shards, router, edge } = await startSampleCluster(t, dir, local)

  const body = titleBytes(300_000, 'console-samples')
  const put = await request(`${router.url}/v1/content/sample`, { method: 'PUT', body,
    headers: { authorization: `Bearer ${secrets['admin-token']}`, 'content-digest': digestHeader(createHash('sha256').update(body).digest('hex')) } })
  await put.body.dump()
  t.equal(put.statusCode, 201, 'ingested')
  for (let i = 0; i < 2; i++) t.equal((await get(`${edge.url}/v1/content/sample`)).body.length, body.length, `read ${i + 1} through the edge`)
  await settled(edge)
  await until(async () => (await metric(router.url, 'reelcdn_router_edges', { state: 'live' })) === 1, 'the edge\'s heartbeat')
  await router.cluster.health.checkAll()

  const browser = await launch()
  t.teardown(() => browser.close())
  // t.testdir() again would wipe the services' data dirs: the screenshots go beside them
  const shots = dir

  const e = await openConsole(browser, edge.url, secrets['edge-admin-token']!)
  await e.screenshot({ path: join(shots, 'edge.png'), fullPage: true })
  t.equal(await figure(e, 'traffic.bytesServed'), await metric(edge.url, 'reelcdn_edge_bytes_served_total'), 'edge: bytes served')
  t.equal(await cell(e, 'tiers', 0, 'bytes'), await metric(edge.url, 'reelcdn_edge_tier_bytes', { tier: 'ram' }), 'edge: RAM tier bytes')
  t.equal(await cell(e, 'tiers', 1, 'capacity'), await metric(edge.url, 'reelcdn_edge_tier_capacity_bytes', { tier: 'disk' }), 'edge: disk tier size')
  t.equal(await figure(e, 'prefill.window'), '02:00-06:00', 'edge: the sample\'s prefill window')

  const r = await openConsole(browser, router.url, secrets['admin-token']!)
  await r.screenshot({ path: join(shots, 'router.png'), fullPage: true })
  t.equal(await figure(r, 'shards.up'), await metric(router.url, 'reelcdn_router_shard_up'), 'router: shards up')
  t.equal(await figure(r, 'shards.storedBytes'), await metric(router.url, 'reelcdn_router_shard_stored_bytes'), 'router: bytes stored')
  t.equal(await figure(r, 'edges.live'), await metric(router.url, 'reelcdn_router_edges', { state: 'live' }), 'router: live edges')
  t.equal(await cell(r, 'edges', 0, 'id'), 'edge-1', 'router: the sample\'s edge id')

  const s = await openConsole(browser, shards[0]!.url, secrets['shard-token']!)
  await s.screenshot({ path: join(shots, 'shard.png'), fullPage: true })
  t.equal(await figure(s, 'health.state'), 'up')
  t.equal(await figure(s, 'health.chunks'), await metric(shards[0]!.url, 'reelcdn_origin_chunks', { state: 'ok' }), 'shard: chunks')
  t.equal(await figure(s, 'health.storedBytes'), await metric(shards[0]!.url, 'reelcdn_origin_stored_bytes'), 'shard: bytes stored')
  t.equal(await figure(s, 'traffic.bytesServed'), await metric(shards[0]!.url, 'reelcdn_origin_bytes_served_total'), 'shard: bytes sent')
  t.equal((await get(`${shards[0]!.url}/status.json`)).status, 401, 'shard: the figures need the shard token')
})
