import t from 'tap'
import { blockListDigest } from '../../lib/integrity/block-hasher.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge, type TestContext } from '../helpers/edge.js'
import { TestCluster, randomBody, TOKEN } from '../system/harness.js'

/**
 * Issue 14, item 5: on a cold edge a short range ending at a chunk's end (the
 * last bytes of a chunk, an MP4's moov at the end of a title) waited for the
 * whole chunk to be fetched and hashed: the edge held the chunk's last byte
 * until the whole-chunk SHA-256 verified. With the manifest's block lists the
 * edge fetches the chunk's block list alongside its fill and releases each
 * 64 KiB block once it passes its CRC32C, wherever it is.
 *
 * The upstream answers the tail's request and then holds every request that
 * starts at the chunk's first byte (the gap the fill fetches next), so on the
 * old code the tail range cannot complete until the fill's deadline cuts it,
 * however fast the machine: the test does not depend on timing.
 */
const CS = 1024 * 1024
const SIZE = 2 * CS + 200_000 // the last chunk (and its last block) short

async function setup(t: TestContext, blocks: boolean, overrides: Record<string, number> = {}) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(SIZE, 'tail')
  await up.addTitle('tail', bytes, { chunkSize: CS, blocks })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.fillTimeoutMs': 5000, ...overrides })
  const read = (start: number, end: number) => get(`${edge.url}/v1/content/tail`, { range: `bytes=${start}-${end}` })
    .catch((err: Error) => ({ status: 0, headers: {}, body: Buffer.alloc(0), error: err.message }))
  return { up, bytes, edge, read }
}

t.test('the last 100 bytes of a chunk are served while the rest of the chunk is still held upstream', async t => {
  const { up, bytes, edge, read } = await setup(t, true)
  up.hold('tail', 0, 0)
  const players = await Promise.all([read(CS - 100, CS - 1), read(CS - 100, CS - 1), read(CS - 5000, CS - 1)])
  t.same(players.map(r => r.status), [206, 206, 206], 'every player gets its tail range, not a cut one')
  t.ok(players[0]!.body.equals(bytes.subarray(CS - 100, CS)), 'byte-exact')
  t.ok(players[2]!.body.equals(bytes.subarray(CS - 5000, CS)), 'byte-exact')
  t.equal(edge.fills.size, 1, 'while the fill still waits for the rest of the chunk')
  await up.held('tail', 0)
  t.same(up.log.filter(r => r.index === 0).map(r => r.range), [`bytes=${CS - 65536}-${CS - 1}`, `bytes=0-${CS - 65536 - 1}`],
    'the fill asked for the tail from its block boundary, then for the gap before it')
  t.same(up.crcsLog, ['tail/0'], 'one block-list request for the fill, however many players')
  up.release('tail', 0)
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_tier_chunks', { tier: 'ram' }), 1, 'the whole chunk verified and was cached')
})

t.test('the last 32 KiB of a title are served while the rest of its last chunk is still held upstream', async t => {
  const { up, bytes, edge, read } = await setup(t, true)
  up.hold('tail', 2, 0)
  const r = await read(SIZE - 32 * 1024, SIZE - 1)
  t.equal(r.status, 206)
  t.ok(r.body.equals(bytes.subarray(SIZE - 32 * 1024)), 'byte-exact, the title\'s last byte included')
  t.equal(edge.fills.size, 1, 'while the fill still waits for the rest of the chunk')
  up.release('tail', 2)
  await settled(edge)
})

t.test('a title without block lists keeps the whole-chunk rule: a tail range that cannot verify is cut, not completed', async t => {
  const { up, bytes, read } = await setup(t, false, { 'edge.fillTimeoutMs': 1000 })
  up.hold('tail', 0, 0)
  const r = await read(CS - 100, CS - 1)
  t.not(r.status === 206 && r.body.length === 100, true, `never a complete answer on an unverified chunk's last byte (${r.status}, ${r.body.length} bytes)`)
  if (r.status === 206) t.ok(bytes.subarray(CS - 100, CS - 100 + r.body.length).equals(r.body), 'what did arrive is right')
  t.same(up.crcsLog, [], 'no block list asked for')
  up.release('tail', 0)
})

t.test('through a real router: the crcs route, and a cold edge\'s tail ranges byte-exact', async t => {
  const c = await TestCluster.start(t, { chunkSize: 256 * 1024, overrides: { 'router.readTokenFile': '' }, env: { REELCDN_ROUTER_READ_TOKEN: 'reader' } })
  const body = randomBody(3 * 256 * 1024 + 50_000)
  t.equal((await c.ingest('film', body)).status, 201)
  const auth = { authorization: 'Bearer reader' }
  const man = JSON.parse((await c.get('/v1/content/film/meta', auth)).body.toString()) as { blocks: string[]; chunks: string[] }
  const crcs = await c.get('/v1/content/film/chunks/1/crcs', auth)
  t.equal(crcs.status, 200)
  t.equal(crcs.body.length, 4 * 4, 'a CRC32C per 64 KiB block')
  t.equal(blockListDigest(crcs.body), man.blocks[1], 'the list the manifest anchors')
  t.equal(crcs.headers.etag, `"${man.chunks[1]}"`)
  t.equal((await c.get('/v1/content/film/chunks/3/crcs', auth)).body.length, 4, 'the short last chunk: one block')
  t.equal((await c.get('/v1/content/film/chunks/1/crcs')).status, 401, 'read like the chunk: the edges\' credential is needed')
  t.equal((await c.get('/v1/content/film/chunks/1/crcs', { authorization: `Bearer ${TOKEN}` })).status, 200, 'or the admin token')
  t.equal((await c.get('/v1/content/film/chunks/4/crcs', auth)).status, 404, 'past the last chunk')

  const edge = await startTestEdge(t, { url: c.url, token: 'reader' }, { 'edge.readaheadChunks': 0 })
  const tails: [number, number][] = [[256 * 1024 - 100, 256 * 1024 - 1], [body.length - 32 * 1024, body.length - 1]]
  for (const [s, e] of tails) {
    const r = await get(`${edge.url}/v1/content/film`, { range: `bytes=${s}-${e}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(body.subarray(s, e + 1)), `bytes ${s}-${e} byte-exact`)
  }
  t.equal(await metric(edge.url, 'reelcdn_edge_upstream_requests_total', { kind: 'crcs', result: 'ok' }), 2, 'one block list per fill')
  await settled(edge)
})
