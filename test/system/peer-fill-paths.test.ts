import t from 'tap'
import { get, metric, settled } from '../helpers/edge.js'
import { adaptiveManifest, ladderFiles, makeLadder } from '../helpers/edge-ladder.js'
import { startSite, titleOwnedBy } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * Peer fill (issue 17, docs/peer-fill.md) on the owner's other ways of
 * answering: through its serve threads (a peer request is relayed to its
 * main thread), and a rendition's chunks (the `/r/{rid}` form of the path).
 */
const KiB = 1024
const CHUNK = 256 * KiB

t.test('an owner with serve threads answers its siblings too (peer requests go to its main thread)', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b'], {}, { each: id => ({ 'edge.serveThreads': id === 'edge-a' ? 1 : 0 }) })
  const [a, b] = s.edges as [typeof s.edges[0], typeof s.edges[0]]
  const id = titleOwnedBy(s.members(), 'edge-a')
  const body = titleBytes(2 * CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  t.ok((await get(`${a.url}/v1/content/${id}`)).body.equals(body))
  await settled(a)
  t.ok((await get(`${b.url}/v1/content/${id}`)).body.equals(body), 'byte-exact from the sibling')
  await settled(b)
  t.equal(s.up.requests(id), 2, 'no origin fetch for the sibling')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), body.length)
})

t.test('a rendition\'s chunks go by the peer path too (/v1/peer/{id}/r/{rid}/chunk/{index})', async t => {
  const ladder = await makeLadder()
  const s = await startSite(t, ['edge-a', 'edge-b'])
  const [a, b] = s.edges as [typeof s.edges[0], typeof s.edges[0]]
  const id = titleOwnedBy(s.members(), 'edge-a', 'ladder')
  const cs = 64 * KiB
  s.up.addAdaptive(adaptiveManifest(id, ladder, cs), ladderFiles(ladder))
  const v360 = ladder.find(f => f.id === 'v360')!.bytes
  t.ok((await get(`${a.url}/v1/content/${id}/v360.mp4`)).body.equals(v360))
  await settled(a)
  const origin = s.up.requests(id)
  t.equal(origin, Math.ceil(v360.length / cs), 'the owner filled the rendition')
  t.ok((await get(`${b.url}/v1/content/${id}/v360.mp4`)).body.equals(v360), 'byte-exact from the sibling')
  await settled(b)
  t.equal(s.up.requests(id), origin, 'no origin fetch for the sibling')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), v360.length)
})
