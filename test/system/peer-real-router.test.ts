import t from 'tap'
import { TestCluster, EDGE_TOKEN, randomBody } from './harness.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { ownersOf } from '../../lib/affinity.js'

t.test('peer fill with the real router answering heartbeats (i17-steer merged)', async t => {
  const c = await TestCluster.start(t, { chunkSize: 256 * 1024 })
  const edges = []
  for (const id of ['edge-a', 'edge-b']) edges.push(await startTestEdge(t, { url: c.url, token: undefined },
    { 'edge.site': 's1', 'edge.id': id, 'edge.heartbeatMs': 50, 'edge.networks': ['127.0.0.0/8'] }, { REELCDN_EDGE_TOKEN: EDGE_TOKEN }))
  const [a, b] = edges as [typeof edges[0], typeof edges[0]]
  await until(() => a.site.members.length === 2 && b.site.members.length === 2, 'both edges hear of their site from the router')
  t.same(a.site.members.map(m => m.id).sort(), ['edge-a', 'edge-b'])
  let id = ''
  for (let n = 0; ; n++) { id = `film-${n}`; if (ownersOf(id, a.site.members, 1)[0]!.id === 'edge-a') break }
  const body = randomBody(4 * 256 * 1024)
  await c.ingest(id, body)
  t.ok((await get(`${a.url}/v1/content/${id}`)).body.equals(body))
  await settled(a)
  let reads = 0
  for (const s of c.shards) reads += await metric(s!.url, 'reelcdn_origin_chunk_reads_total')
  const relay = await metric(c.url, 'reelcdn_router_bytes_served_total')
  t.ok((await get(`${b.url}/v1/content/${id}`)).body.equals(body), 'byte-exact from the sibling')
  await settled(b)
  let after = 0
  for (const s of c.shards) after += await metric(s!.url, 'reelcdn_origin_chunk_reads_total')
  t.equal(after, reads, 'no shard read for the sibling')
  t.equal(await metric(c.url, 'reelcdn_router_bytes_served_total'), relay, 'no router relay byte for the sibling')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), body.length)
  console.log('shard chunk reads for the owner:', reads, 'router relay bytes:', relay)
})
