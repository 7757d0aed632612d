import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { get, metric, settled } from '../helpers/edge.js'
import { startSite, titleOwnedBy, type Member } from '../helpers/site.js'
import { titleBytes } from '../helpers/titles.js'
import { createHash } from 'node:crypto'

/**
 * Peer fill (issue 17, docs/peer-fill.md): an edge missing a chunk of a title
 * another edge of its site owns asks that edge first, verifies every block
 * against the manifest, and fills by its own path when the owner is slow,
 * down or lying. The FakeUpstream plays the router (test/helpers/site.ts):
 * its chunk requests are the origin fetches counted here.
 */
const KiB = 1024
const CHUNK = 256 * KiB

t.test('a chunk a sibling holds costs the origin nothing: the other edge gets it from the owner, verified', async t => {
  const s = await startSite(t, ['edge-a', 'edge-b'])
  const [a, b] = s.edges as [typeof s.edges[0], typeof s.edges[0]]
  const id = titleOwnedBy(s.members(), 'edge-a')
  const body = titleBytes(4 * CHUNK + 1000, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  t.ok((await get(`${a.url}/v1/content/${id}`)).body.equals(body), 'the owner filled it')
  await settled(a)
  const ownerServed = await metric(a.url, 'reelcdn_edge_bytes_served_total')
  const ownerReads = await metric(a.url, 'reelcdn_edge_requests_total')
  const origin = s.up.requests(id)
  const lists = s.up.crcsLog.length
  t.equal(origin, 5, 'one origin fetch per chunk, by the owner')

  const got = await get(`${b.url}/v1/content/${id}`)
  t.equal(got.status, 200)
  t.ok(got.body.equals(body), 'byte-exact from the sibling')
  await settled(b)
  t.equal(s.up.requests(id), origin, 'zero origin fetches for the sibling\'s chunks')
  t.equal(s.up.crcsLog.length, lists, 'their block lists came from the owner too')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'served' }), 5, 'each chunk from the owner')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), body.length, 'every byte, verified, once')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'timeout' }) + await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'error' }), 0)
  t.equal(await metric(a.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk' }), 5, 'the owner answered them from its tiers')
  t.equal(await metric(a.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk', from: 'fill' }), 0)
  t.equal(await metric(a.url, 'reelcdn_edge_peer_served_bytes_total'), body.length)
  // the site's hits: every byte the sibling served came from a chunk the owner held, none of the owner's own misses did
  t.equal(await metric(b.url, 'reelcdn_edge_sibling_bytes_served_total'), body.length, 'the sibling\'s bytes count as the site\'s hits')
  t.equal(await metric(b.url, 'reelcdn_edge_bytes_served_total', { result: 'miss' }) + await metric(b.url, 'reelcdn_edge_bytes_served_total', { result: 'coalesced' }),
    body.length, '...and still as this edge\'s misses')
  t.equal(await metric(a.url, 'reelcdn_edge_sibling_bytes_served_total'), 0, 'the owner\'s misses came from the origin')
  t.equal(await metric(a.url, 'reelcdn_edge_bytes_served_total'), ownerServed, 'the owner\'s answers to a sibling are not bytes served to players')
  t.equal(await metric(a.url, 'reelcdn_edge_requests_total'), ownerReads, '...nor player reads')
  // cached on the asker now: a hit, nobody asked
  t.ok((await get(`${b.url}/v1/content/${id}`, { range: 'bytes=0-99' })).body.equals(body.subarray(0, 100)))
  t.equal(await metric(a.url, 'reelcdn_edge_peer_served_total', { kind: 'chunk' }), 5, 'a hit on the asker asks nobody')

  // a title the asker owns goes to the origin from it, not to a sibling
  const mine = titleOwnedBy(s.members(), 'edge-b', 'mine')
  const mb = titleBytes(2 * CHUNK, mine)
  await s.up.addTitle(mine, mb, { chunkSize: CHUNK, blocks: true })
  t.ok((await get(`${b.url}/v1/content/${mine}`)).body.equals(mb))
  await settled(b)
  t.equal(s.up.requests(mine), 2, 'its owner filled it from the origin')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'served' }), 5, 'no peer asked for it')
})

/** A stand-in for an owner edge: `handle` answers its peer requests (or does not). */
async function fakeOwner(t: Test, handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '')
    handle(req, res)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(r => server.close(() => r()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

/** A site of edge-b (real) and edge-a at `ownerUrl` (a stand-in), and a title edge-a owns. */
async function siteWithStandIn(t: Test, ownerUrl: string, overrides: Record<string, number> = {}) {
  const s = await startSite(t, ['edge-b'], overrides)
  const b = s.edges[0]!
  const members = (): Member[] => [{ id: 'edge-a', url: ownerUrl, weight: 1 }, ...s.members()]
  s.view = () => ({ members: members() })
  await s.settled(2)
  const id = titleOwnedBy(members(), 'edge-a')
  const body = titleBytes(2 * CHUNK, id)
  await s.up.addTitle(id, body, { chunkSize: CHUNK, blocks: true })
  return { s, b, id, body }
}

t.test('an owner that sends no first byte in time: the edge fills by its own path, and holds the owner back', async t => {
  const stall = await fakeOwner(t, () => { /* never answers */ })
  const { s, b, id, body } = await siteWithStandIn(t, stall.url, { 'edge.peer.firstByteTimeoutMs': 150 })
  const t0 = performance.now()
  const got = await get(`${b.url}/v1/content/${id}`, { range: 'bytes=0-99' })
  const ms = performance.now() - t0
  t.equal(got.status, 206)
  t.ok(got.body.equals(body.subarray(0, 100)), 'the right bytes, from the origin')
  t.ok(ms < 150 + 2000, `the first byte after about the timeout (${ms.toFixed(0)} ms)`)
  t.ok(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'timeout' }) >= 1, 'counted as a timeout')
  const asked = stall.requests.length
  t.ok(asked >= 1 && asked <= 2, `the owner was asked for the chunk and its block list at most: ${stall.requests.join(' ')}`)
  // the next chunk: the owner is held back, not asked again
  t.ok((await get(`${b.url}/v1/content/${id}`, { range: `bytes=${CHUNK}-${CHUNK + 99}` })).body.equals(body.subarray(CHUNK, CHUNK + 100)))
  t.equal(stall.requests.length, asked, 'a slow owner costs one timeout, not one per chunk')
  t.ok(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'held' }) >= 1)
  await settled(b)
  t.equal(s.up.requests(id, 0), 1, 'chunk 0 from the origin once')
})

t.test('an owner that is down: the edge fills by its own path at once', async t => {
  const { s, b, id, body } = await siteWithStandIn(t, await deadUrl())
  const got = await get(`${b.url}/v1/content/${id}`)
  t.equal(got.status, 200)
  t.ok(got.body.equals(body))
  t.ok(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'error' }) >= 1, 'counted as an error')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'served' }), 0)
  await settled(b)
  t.equal(s.up.requests(id), 2, 'both chunks from the origin')
})

t.test('an owner lying about a block: the rest from the edge\'s own path from the last verified block, no wrong byte', async t => {
  let body: Buffer = Buffer.alloc(0)
  const liar = await fakeOwner(t, (req, res) => {
    const m = /\/chunk\/(\d+)(\/crcs)?$/.exec(req.url ?? '')
    const i = Number(m?.[1])
    const chunk = body.subarray(i * CHUNK, (i + 1) * CHUNK)
    if (m?.[2]) return void res.writeHead(200, { 'content-length': 4 * (CHUNK / 65536) }).end(blockCrcs(chunk))
    const bad = Buffer.from(chunk)
    bad[100_000]! ^= 0xff // block 1
    res.writeHead(200, { etag: `"${sha(chunk)}"`, 'content-length': CHUNK }).end(bad)
  })
  const { s, b, id, body: real } = await siteWithStandIn(t, liar.url, { 'edge.readaheadChunks': 0 })
  body = real
  const got = await get(`${b.url}/v1/content/${id}`, { range: `bytes=0-${CHUNK - 1}` })
  t.equal(got.status, 206)
  t.ok(got.body.equals(real.subarray(0, CHUNK)), 'the player got the right bytes')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fills_total', { outcome: 'error' }), 1, 'the bad block counted')
  t.equal(await metric(b.url, 'reelcdn_edge_peer_fill_bytes_total'), 65536, 'only the verified block before it came from the liar')
  t.equal(await metric(b.url, 'reelcdn_edge_sibling_bytes_served_total'), 0, 'an owner that does not say it held the chunk gives the site no hit')
  t.same(s.up.log.filter(r => r.contentId === id).map(r => r.range), [`bytes=65536-${CHUNK - 1}`], 'the origin sent the rest from block 1')
  await settled(b)
  t.ok((await get(`${b.url}/v1/content/${id}`, { range: `bytes=0-${CHUNK - 1}` })).body.equals(real.subarray(0, CHUNK)), 'the cached chunk is the verified one')
})

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** A URL nothing listens at (a port just closed). */
async function deadUrl(): Promise<string> {
  const server = http.createServer()
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(r => server.close(() => r()))
  return `http://127.0.0.1:${port}`
}
