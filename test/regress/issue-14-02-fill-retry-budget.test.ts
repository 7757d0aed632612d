import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'

/**
 * Issue 14, item 2, review: a fill cut by its upstream resumes from its last
 * verified block, but its budget of resumptions (`edge.fillRetries`) was per
 * segment for the fill's whole life, so a long fill from a flaky upstream that
 * got further with each request failed its players after that many cuts in
 * all. The budget is now for failures in a row: a request that brought at
 * least one more verified 64 KiB block starts the count again; the fill's
 * deadline (`edge.fillTimeoutMs`) still bounds the whole.
 */
const CS = 1024 * 1024

async function setup(t: Parameters<typeof startTestEdge>[0], resetEvery: number) {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CS, 'flaky')
  await up.addTitle('flaky', bytes, { chunkSize: CS, blocks: true })
  up.fault('flaky', 0, { resetEvery })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.fillRetries': 2, 'edge.fillRetryBackoffMs': 5 })
  const read = () => get(`${edge.url}/v1/content/flaky`).catch((err: Error) => ({ status: 0, body: Buffer.alloc(0), error: err.message }))
  return { up, bytes, edge, read }
}

t.test('an upstream that cuts every request after 200 kB, six cuts in all with fillRetries = 2: every player gets every byte', async t => {
  const { up, bytes, edge, read } = await setup(t, 200_000)
  const players = await Promise.all([read(), read()])
  t.same(players.map(r => r.status), [200, 200], 'no player sees a cut')
  t.ok(players.every(r => r.body.equals(bytes)), 'byte-exact')
  t.equal(up.requests('flaky', 0), 6, 'each request resumed from the last verified block before its cut')
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_retries_total', { reason: 'cut' }), 5)
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total'), 0)
})

t.test('an upstream that cuts every request before a whole block: the fill fails after fillRetries resumptions', async t => {
  const { up, edge, read } = await setup(t, 30_000)
  const r = await read()
  t.not(r.status === 200 && r.body.length === CS, true, 'the player is failed, not served')
  t.equal(up.requests('flaky', 0), 3, 'the first request and two resumptions, each from byte 0')
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_fill_failures_total'), 1)
})
