import t from 'tap'
import { randomBody, until } from './harness.js'
import { get, metric, startTestEdge } from '../helpers/edge.js'
import { directCluster, ownersOf } from '../helpers/direct-cluster.js'
import { proxyShard } from '../helpers/proxy-shard.js'

/**
 * Direct fills (docs/fill-path.md): an edge reads chunk bytes from the owning
 * shards under router grants, and keeps the relay's guarantees: every byte
 * verified against the manifest before it is sent or cached, a failover at
 * the last verified block without re-sending, none of it through the router.
 */
const KiB = 1024
const CHUNK = 256 * KiB

t.test('a cold fill reads every chunk from its owners: no byte crosses the router', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(3 * CHUNK + 1000)
  await c.ingest('film', body)
  const edge = await startTestEdge(t, { url: c.url, token: undefined })
  const got = await get(`${edge.url}/v1/content/film`)
  t.equal(got.status, 200)
  t.ok(got.body.equals(body), 'byte-exact')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), body.length, 'every byte direct, once')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'relay' }), 0)
  t.equal(await metric(c.url, 'reelcdn_router_bytes_served_total'), 0, 'the router sent no content byte')
  t.ok(await metric(c.url, 'reelcdn_router_fill_grants_total', { result: 'issued' }) >= 4, 'grants issued for each chunk')
  // readahead: one answer covers a chunk and the next, so fewer router round trips than chunks
  t.ok(await metric(edge.url, 'reelcdn_edge_fill_grant_requests_total', { result: 'router' }) < 4, 'grants asked for several chunks at once')
  let sent = 0
  for (const s of c.shards) sent += await metric(s!.url, 'reelcdn_origin_fill_grant_bytes_total')
  t.equal(sent, body.length, 'the shards count the bytes they sent under grants')
})

t.test('a shard lying about a block mid-fill: the next owner sends the rest from the last verified block, no wrong byte sent or cached', async t => {
  const c = await directCluster(t, { chunkSize: CHUNK })
  const body = randomBody(CHUNK)
  const ing = await c.ingest('lie', body)
  const [first, second] = ownersOf(c, 'lie', ing.json.version, 0)
  // the first owner in read order flips a byte of block 1; the second is watched
  const liar = await proxyShard(t, c, first!, { corruptAt: 100_000 })
  const next = await proxyShard(t, c, second!)
  await c.router.cluster.health.checkAll()
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.readaheadChunks': 0 })
  const got = await get(`${edge.url}/v1/content/lie`)
  t.equal(got.status, 200)
  t.ok(got.body.equals(body), 'the player got the right bytes')
  t.ok(liar.log.some(l => /^GET \/v1\/chunks\/lie\.[0-9a-f]+\/0 $/.test(l)), `the liar was asked for the whole chunk: ${liar.log.join(' | ')}`)
  t.ok(next.log.some(l => l.endsWith(`bytes=65536-${CHUNK - 1}`)), `the next owner was asked from block 1, the first unverified: ${next.log.join(' | ')}`)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failovers_total', { reason: 'corrupt' }), 1)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), CHUNK, 'no byte sent twice')
  // the cached copy: a hit now, and right
  const again = await get(`${edge.url}/v1/content/lie`)
  t.ok(again.body.equals(body), 'the cached chunk is the verified one')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), CHUNK, 'served from cache')
})

t.test('a shard dying mid-chunk: the next owner sends the rest, the chunk verifies whole, one fill', async t => {
  const c = await directCluster(t, { chunkSize: 4 * CHUNK })
  const body = randomBody(4 * CHUNK)
  const ing = await c.ingest('die', body)
  const [first] = ownersOf(c, 'die', ing.json.version, 0)
  // it sends 100,000 bytes (one whole block), then goes silent until it dies
  const dying = await proxyShard(t, c, first!, { stallAfter: 100_000 })
  await c.router.cluster.health.checkAll()
  const edge = await startTestEdge(t, { url: c.url, token: undefined }, { 'edge.readaheadChunks': 0 })
  const pending = get(`${edge.url}/v1/content/die`)
  await until(async () => await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }) >= 65536, 'the first block from the dying shard')
  await dying.close()
  const got = await pending
  t.equal(got.status, 200)
  t.ok(got.body.equals(body), 'byte-exact')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failovers_total', { reason: 'cut' }), 1, 'one move to the next owner')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), body.length, 'nothing re-sent')
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'chunk' }) +
    await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'range' }), 0, 'nothing from the relay')
  t.equal(edge.fills.size, 0, 'the fill ended')
  const again = await get(`${edge.url}/v1/content/die`, { range: 'bytes=0-99' })
  t.ok(again.body.equals(body.subarray(0, 100)), 'cached')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_bytes_total', { path: 'direct' }), body.length, 'one fill: the second read is a hit')
})
