import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * Readahead waits for the player's first byte (issue 16): a miss's next chunk
 * is asked for only once the chunk the player waits on has released the byte
 * it asked for, so the two fills do not share the upstream during the
 * player's time to first byte. Ordered with the fake upstream's hold/release.
 */
const CS = 256 * 1024

t.test('a miss starts readahead of the next chunk only after its first byte arrived', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(3 * CS, 'readahead-order')
  await up.addTitle('film', bytes, { chunkSize: CS, blocks: true })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 1 })
  up.hold('film', 0, 0) // chunk 0 answers its headers, then holds its body
  const player = get(`${edge.url}/v1/content/film`, { range: 'bytes=0-65535' })
  await up.held('film', 0)
  await until(async () => (await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'miss' })) === 1, 'the player to wait on the fill')
  t.equal(up.requests('film', 1), 0, 'chunk 1 is not asked for while the player waits for chunk 0')
  t.equal(await metric(edge.url, 'reelcdn_edge_readahead_total', { result: 'started' }), 0)
  up.release('film', 0)
  const r = await player
  t.equal(r.status, 206)
  t.ok(r.body.equals(bytes.subarray(0, 65536)), 'every byte')
  await up.requested(1, 'film', 1)
  t.equal(await metric(edge.url, 'reelcdn_edge_readahead_total', { result: 'started' }), 1, 'then readahead starts chunk 1')
  await until(() => edge.cache.ram.stats().entries === 2, 'chunk 1 to be cached by readahead')
})
