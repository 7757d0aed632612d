import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * Title metadata: cached with a TTL, so a deleted title stops being served
 * within it, or at once after an admin purge; concurrent and repeated misses
 * cost one upstream lookup; the edge authenticates to its upstream.
 */
const CS = 128 * 1024

t.test('a title deleted upstream stops being served within the metadata TTL', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('gone', titleBytes(CS, 'gone'), { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.metaTtlMs': 200, 'edge.metaNegativeTtlMs': 0 })
  const url = `${edge.url}/v1/content/gone`
  t.equal((await get(url)).status, 200)
  await up.removeTitle('gone')
  // (that it is still served before the TTL runs out is timing; the purge test shows it with an hour-long TTL)
  await until(async () => (await get(url)).status === 404, 'the TTL to expire', 5000)
  t.pass('404 after the TTL')
})

t.test('DELETE /v1/cache/{contentId} purges at once, and needs the admin token', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const v1 = titleBytes(2 * CS, 'v1')
  await up.addTitle('p1', v1, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.metaTtlMs': 3600000 }, { REELCDN_EDGE_ADMIN_TOKEN: 'sesame' })
  const url = `${edge.url}/v1/content/p1`
  t.ok((await get(url)).body.equals(v1))
  await edge.cache.disk.idle()
  t.equal(edge.cache.disk.stats().entries, 2)

  const denied = await get(`${edge.url}/v1/cache/p1`, {}, 'DELETE')
  t.equal(denied.status, 401)
  t.equal(JSON.parse(denied.body.toString()).error.code, 'CDN_ERR_UNAUTHORIZED')
  t.equal((await get(`${edge.url}/v1/cache/p1`, { authorization: 'Bearer wrong' }, 'DELETE')).status, 401)

  const v2 = titleBytes(2 * CS, 'v2') // re-published with other bytes: without a purge the edge would serve v1 for an hour
  await up.removeTitle('p1')
  await up.addTitle('p1', v2, { chunkSize: CS, version: 'v2' })
  t.ok((await get(url)).body.equals(v1), 'before the purge: the cached version')
  const purged = await get(`${edge.url}/v1/cache/p1`, { authorization: 'Bearer sesame' }, 'DELETE')
  t.equal(purged.status, 200)
  t.same(JSON.parse(purged.body.toString()), { contentId: 'p1', purged: { ram: 2, disk: 2 } })
  t.equal(edge.cache.disk.stats().entries, 0)
  t.ok((await get(url)).body.equals(v2), 'after the purge: the new version, fetched afresh')
  t.equal(await metric(edge.url, 'reelcdn_edge_purges_total'), 1)
  const status = await get(`${edge.url}/v1/cache`, { authorization: 'Bearer sesame' })
  t.equal(JSON.parse(status.body.toString()).ram.entries, 2)
})

t.test('a title re-published upstream with other bytes: the next fill notices, and the manifest is refetched', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const v1 = titleBytes(2 * CS, 'old')
  const v2 = titleBytes(2 * CS, 'new')
  await up.addTitle('re', v1, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.metaTtlMs': 3600000, 'edge.readaheadChunks': 0 })
  const url = `${edge.url}/v1/content/re`
  t.ok((await get(url, { range: `bytes=0-${CS - 1}` })).body.equals(v1.subarray(0, CS)))
  await up.removeTitle('re')
  await up.addTitle('re', v2, { chunkSize: CS, version: 'v2' })
  const r = await get(url, { range: `bytes=${CS}-${2 * CS - 1}` })
  t.equal(r.status, 502, 'chunk 1 upstream is another version than the cached manifest says: refused, not mixed in')
  t.equal(JSON.parse(r.body.toString()).error.code, 'CDN_ERR_UPSTREAM_VERSION')
  t.ok((await get(url)).body.equals(v2), 'the manifest was dropped: the next request serves the new version whole')
})

t.test('metadata misses are shared: concurrent ones and, for a missing title, repeated ones', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  await up.addTitle('m1', titleBytes(CS, 'm1'), { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.metaNegativeTtlMs': 60000 })
  const rs = await Promise.all(Array.from({ length: 20 }, () => get(`${edge.url}/v1/content/m1`, { range: 'bytes=0-9' })))
  t.same(new Set(rs.map(r => r.status)), new Set([206]))
  t.equal(up.metaLog.filter(id => id === 'm1').length, 1, 'twenty concurrent players, one metadata lookup')
  for (let i = 0; i < 5; i++) t.equal((await get(`${edge.url}/v1/content/nope`)).status, 404)
  t.equal(up.metaLog.filter(id => id === 'nope').length, 1, 'a missing title is looked up once per negative TTL')
  t.equal(await metric(edge.url, 'reelcdn_edge_meta_lookups_total', { result: 'negative' }), 4)
})

t.test('the edge sends its upstream token; a wrong or missing one is a 502 that says so', async t => {
  const up = await FakeUpstream.start({ token: 'upstream-secret' })
  t.teardown(() => up.close())
  const bytes = titleBytes(CS, 'tok')
  await up.addTitle('tok', bytes, { chunkSize: CS })
  const good = await startTestEdge(t, up)
  t.ok((await get(`${good.url}/v1/content/tok`)).body.equals(bytes))
  const bad = await startTestEdge(t, { url: up.url, token: undefined })
  const r = await get(`${bad.url}/v1/content/tok`)
  t.equal(r.status, 502)
  t.match(JSON.parse(r.body.toString()).error.message, /401.*upstreamTokenFile/)
})

t.test('an upstream that is down: 502, and the edge stays up', async t => {
  const edge = await startTestEdge(t, { url: 'http://127.0.0.1:9', token: undefined })
  const r = await get(`${edge.url}/v1/content/anything`)
  t.equal(r.status, 502)
  t.match(JSON.parse(r.body.toString()).error.message, /ECONNREFUSED/)
  t.equal((await get(`${edge.url}/healthz`)).status, 200)
})
