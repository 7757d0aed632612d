import t from 'tap'
import http from 'node:http'
import { get, metric, settled, until } from '../helpers/edge.js'
import { EDGE_CREDENTIAL, startSite, titleOwnedBy } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'

/**
 * From a read-only audit (stop 41): a sibling's request for a chunk's block
 * list (`GET /v1/peer/{id}/chunk/{i}/crcs`) joined the owner's fill of the
 * chunk, or started one, and never left it. When the sibling gave up (its
 * peer.firstByteTimeoutMs) while that fill still waited for a slot, the fill
 * stayed wanted: once a slot freed it fetched a chunk nobody was waiting for,
 * ahead of players still in line (docs/security.md, "What a client that
 * leaves stops"). A chunk request that gave up already withdrew it.
 */
const CHUNK = 128 * 1024
const ok = { authorization: `Bearer ${EDGE_CREDENTIAL}`, 'x-reelcdn-edge-id': 'edge-b', 'x-reelcdn-peer-hop': '1' }

t.test('a sibling that stops waiting for a block list withdraws the owner\'s queued fill it started', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b'], { 'edge.readaheadChunks': 0, 'edge.maxFills': 1 })
  const a = s.edges[0]!
  const id = titleOwnedBy(s.members(), 'edge-a')
  const body = titleBytes(2 * CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  // a player's fill of chunk 0 holds the owner's one slot
  s.up.hold(id, 0, 0)
  const player = get(`${a.url}/v1/content/${id}`, { range: 'bytes=0-9' })
  await s.up.held(id, 0)
  // the sibling asks for chunk 1's block list: a fill waits for the slot; then it gives up
  const req = http.request(`${a.url}/v1/peer/${id}/chunk/1/crcs`, { headers: ok, agent: false })
  req.on('error', () => {})
  req.end()
  await until(async () => (await metric(a.url, 'reelcdn_edge_fills_in_flight')) === 2, 'the block list\'s fill to wait in line')
  req.destroy()
  await until(async () => (await metric(a.url, 'reelcdn_edge_fill_failures_total', { reason: 'withdrawn' })) === 1, 'the waiting fill to be withdrawn')
  s.up.release(id, 0)
  t.ok((await player).body.equals(body.subarray(0, 10)), 'the player got its bytes')
  await settled(a)
  t.equal(s.up.requests(id, 1), 0, 'chunk 1 was never asked for upstream')
})
