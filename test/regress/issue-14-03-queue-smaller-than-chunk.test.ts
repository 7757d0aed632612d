import t from 'tap'
import { createLogger } from '../../lib/logger.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { logSink } from '../helpers/origin.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, settled, startTestEdge } from '../helpers/edge.js'

/**
 * Issue 14, item 3, review: `edge.diskWriteQueueBytes` must hold a chunk. The
 * edge checks it at start against its own `cluster.chunkSize`, but the chunk
 * size that counts is the upstream's, and an edge configured for smaller
 * chunks than its router's said nothing: readahead and prefill, which wait
 * for room in the queue for a whole chunk, never started again, and any chunk
 * verified while one was being written was dropped. Now the edge checks the
 * chunk size of every manifest it learns against the queue, warns once
 * (naming both settings and values), and treats the queue as holding at least
 * one chunk, so readahead and prefill run when it is empty.
 */
const CS = 1024 * 1024

t.test('an upstream chunk bigger than the disk write queue: warned once, and readahead and disk writes still run', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(3 * CS, 'big')
  await up.addTitle('big', bytes, { chunkSize: CS })
  await up.addTitle('big2', titleBytes(2 * CS, 'big2'), { chunkSize: CS })
  const sink = logSink()
  const edge = await startTestEdge(t, up, {
    'cluster.chunkSize': 256 * 1024, 'edge.diskWriteQueueBytes': 512 * 1024, 'edge.ramBytes': 0, 'edge.readaheadChunks': 1,
  }, {}, createLogger('edge', 'info', sink))
  const url = `${edge.url}/v1/content/big`

  // chunk 0 is filled for the player; its readahead of chunk 1 waits (a fill of one chunk is in flight)
  t.equal((await get(url, { range: 'bytes=0-99' })).status, 206)
  await settled(edge)
  t.equal(edge.cache.disk.stats().entries, 1, 'the chunk bigger than the queue went to disk through the empty queue')
  // chunk 0 again, from disk, with nothing in flight and the queue empty: readahead of chunk 1 starts
  t.equal((await get(url, { range: 'bytes=100-199' })).status, 206)
  await settled(edge)
  t.equal(up.requests('big', 1), 1, 'chunk 1 was read ahead')
  t.equal(edge.cache.disk.stats().entries, 2, 'and written to disk')
  t.equal(await metric(edge.url, 'reelcdn_edge_disk_write_drops_total'), 0)
  const r = await get(url, { range: `bytes=${CS}-${CS + 999}` })
  t.ok(r.status === 206 && r.body.equals(bytes.subarray(CS, CS + 1000)), 'served from disk, byte-exact')

  t.equal((await get(`${edge.url}/v1/content/big2`, { range: 'bytes=0-9' })).status, 206)
  await settled(edge)
  const warned = sink.lines.filter(l => l.level === 40 && /edge\.diskWriteQueueBytes/.test(l.msg))
  t.equal(warned.length, 1, 'warned once, for two titles')
  t.match(warned[0]?.msg, /524288/, 'naming the queue\'s bytes')
  t.match(warned[0]?.msg, /1048576/, 'and the upstream\'s chunk size')
  t.match(warned[0]?.msg, /cluster\.chunkSize/, 'and the setting it comes from')
})
