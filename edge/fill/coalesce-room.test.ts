import t from 'tap'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { Coalescer } from './coalesce.js'
import type { ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * Backpressure from the disk's write queue (issue 14 item 3): readahead and
 * prefill start a fill only if the queue has room for their chunk and every
 * fill in flight; a player's fill never waits for it.
 */
const SIZE = 1000
const ref = (i: number): ChunkRef => ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: 'x', size: SIZE })

t.test('readahead and prefill wait for room in the write queue, counting the fills in flight; players do not', async t => {
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const asked: number[] = []
  let room = 3 * SIZE
  // upstream requests that never answer: fills stay in flight until close()
  const fetch: ChunkFetch = () => new Promise(() => {})
  const fills = new Coalescer({
    fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge'),
    room: bytes => { asked.push(bytes); return bytes <= room },
  }, { maxFills: 8, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0 })
  t.teardown(() => fills.close())

  t.equal(fills.prefetch(ref(1)), 'started', 'room for one chunk')
  t.same(asked, [SIZE])
  t.ok(fills.join(ref(2), 0), 'a player fill starts without asking')
  t.same(asked, [SIZE])
  t.equal(fills.prefill(ref(3)).result, 'started', 'three chunks in flight: exactly the room')
  t.same(asked, [SIZE, 3 * SIZE])
  t.equal(fills.prefetch(ref(4)), 'skipped', 'a fourth would not fit')
  t.equal(fills.prefill(ref(4)).result, 'busy')
  t.same(asked, [SIZE, 3 * SIZE, 4 * SIZE, 4 * SIZE])
  t.ok(fills.join(ref(4), 0), 'but a player still gets it')
  const by = Object.fromEntries((await metrics.diskBackpressure.get()).values.map(v => [v.labels.by, v.value]))
  t.same(by, { readahead: 1, prefill: 1 })
  room = Infinity
  t.equal(fills.prefetch(ref(5)), 'started', 'room again: readahead runs')
})
