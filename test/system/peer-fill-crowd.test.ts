import t from 'tap'
import { get, metric, settled, until } from '../helpers/edge.js'
import { startSite, titleOwnedBy } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * Coalescing across the hop (issue 17, docs/peer-fill.md): a flash crowd on
 * two edges of a site, the title's first chunk held at the origin until every
 * viewer has asked, costs one origin fetch per chunk for the whole site: the
 * owner's players share its fill, the sibling's players share the sibling's
 * fill, and that fill's peer request joins the owner's.
 */
const CHUNK = 256 * 1024
const VIEWERS = 10

t.test('a flash crowd on two edges of a site: one origin fetch per chunk', async t => {
  // the owner is cold: its first byte waits on the origin, held here, so the sibling waits past the default 250 ms
  const s = await startSite(t, ['edge-a', 'edge-b'], { 'edge.peer.firstByteTimeoutMs': 10_000 })
  const [a, b] = s.edges as [typeof s.edges[0], typeof s.edges[0]]
  const id = titleOwnedBy(s.members(), 'edge-a')
  const body = titleBytes(4 * CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  s.up.hold(id, 0, 0)
  const crowd = [...Array.from({ length: VIEWERS }, () => get(`${a.url}/v1/content/${id}`)),
    ...Array.from({ length: VIEWERS }, () => get(`${b.url}/v1/content/${id}`))]
  await s.up.held(id, 0)
  // every viewer of the owner, and the sibling's one peer request, waiting on the owner's one fill (+1: this scrape)
  await until(async () => await metric(a.url, 'reelcdn_http_requests_in_flight') >= VIEWERS + 2, 'the whole crowd at the owner')
  await until(async () => await metric(b.url, 'reelcdn_http_requests_in_flight') >= VIEWERS + 1, 'the whole crowd at the sibling')
  t.equal(s.up.requests(id, 0), 1, 'one origin request for chunk 0 so far')
  s.up.release(id, 0)
  const got = await Promise.all(crowd)
  t.ok(got.every(g => g.status === 200 && g.body.equals(body)), `all ${2 * VIEWERS} viewers got every byte`)
  await settled(a)
  await settled(b)
  for (let i = 0; i < 4; i++) t.equal(s.up.requests(id, i), 1, `chunk ${i}: one origin fetch for the site`)
  t.equal(s.up.crcsLog.filter(c => c.startsWith(`${id}/`)).length, 4, 'one block list per chunk for the site')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), body.length, 'the sibling got every byte from the owner')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'served' }), 4, 'one peer request per chunk')
  t.ok(await metric(a.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk', from: 'fill' }) >= 1, 'chunk 0 (at least) answered from the owner\'s fill in flight')
})
