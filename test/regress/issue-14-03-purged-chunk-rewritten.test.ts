import t from 'tap'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge, until } from '../helpers/edge.js'
import { holdThreadPool } from '../helpers/thread-pool-gate.js'

/**
 * Issue 14, item 3, review: a purge cancels a chunk's disk write in progress,
 * but the cancelled write stays in the write queue's books until its file
 * calls return, and an `add` of the same chunk meanwhile was taken for a
 * duplicate and skipped. The chunk, filled again after the purge, never
 * reached the disk: every later read of it was a miss and a fetch upstream.
 * The disk is held still (test/helpers/thread-pool-gate.ts) so the purge lands
 * while the first write is in progress, and the re-fill commits before that
 * write has been abandoned.
 */
const CS = 1024 * 1024
const ADMIN = 'admin-secret-for-the-test'

t.test('purge during a disk write, then a re-fill: the chunk is written to disk again and read from there', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CS, 'purged')
  await up.addTitle('purged', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': 0, 'edge.diskBytes': 16 * CS, 'edge.readaheadChunks': 0 },
    { REELCDN_EDGE_ADMIN_TOKEN: ADMIN })
  const url = `${edge.url}/v1/content/purged`
  const filled = () => until(() => edge.fills.size === 0, 'the fill to commit')

  const gate = holdThreadPool()
  try {
    t.equal((await get(url, { range: 'bytes=0-99' })).status, 206)
    await filled()
    t.equal(edge.cache.disk.pendingWrites, 1, 'its write is stuck on the disk')
    const purge = await get(`${edge.url}/v1/cache/purged`, { authorization: `Bearer ${ADMIN}` }, 'DELETE')
    t.equal(purge.status, 200)
    const again = await get(url, { range: 'bytes=1000-1999' })
    t.ok(again.status === 206 && again.body.equals(bytes.subarray(1000, 2000)), 'served after the purge')
    t.equal(up.requests('purged', 0), 2, 'filled again (its first request): the purged write is not served')
    await filled()
  } finally {
    await gate.release()
  }
  await settled(edge)
  t.equal(await metric(edge.url, 'reelcdn_edge_disk_write_drops_total', { reason: 'purged' }), 1, 'the purged write counted as such')
  t.equal(edge.cache.disk.stats().entries, 1, 'the re-filled chunk is on disk')
  const fetched = up.requests('purged', 0)
  const r = await get(url, { range: 'bytes=0-99' })
  t.ok(r.status === 206 && r.body.equals(bytes.subarray(0, 100)))
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }), 1, 'read from the disk')
  t.equal(up.requests('purged', 0), fetched, 'not fetched again')
})
