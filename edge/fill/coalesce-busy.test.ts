import t from 'tap'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { UpstreamError } from '../../lib/errors.js'
import { Coalescer } from './coalesce.js'
import type { ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * The time the edge spent filling (reelcdn_edge_fill_busy_seconds_total): the
 * union of the fills' lifetimes, not their sum, and nothing while none is in
 * flight. Bounds, not timings: the busy time lies between the sleeps that
 * separate the fills' starts and ends (less a millisecond: libuv rounds a
 * timer to whole ms) and the wall time the test spent from the first start
 * to the last end.
 */
const SIZE = 1000
const ref = (i: number): ChunkRef => ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: 'x', size: SIZE })
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

t.test('busy seconds: the time with at least one fill in flight, overlaps counted once, idle time not at all', async t => {
  let fills: Coalescer | undefined
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0, fillBusySeconds: () => fills!.busySeconds() })
  // each fill's upstream request fails when the test says: that fill ends
  const ends = new Map<number, () => void>()
  const fetch: ChunkFetch = r => new Promise((_, reject) => { ends.set(r.index, () => reject(new UpstreamError('ended by the test'))) })
  fills = new Coalescer({ fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge') },
    { maxFills: 8, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0 })
  t.teardown(() => fills!.close())
  const started = (i: number) => fills!.join(ref(i), 0)!.fill.done.catch(() => {})

  t.equal(fills.busySeconds(), 0, 'nothing filled yet')
  const t0 = performance.now()
  const a = started(1)
  await sleep(50)
  const b = started(2)
  await sleep(50)
  const mid = fills.busySeconds()
  t.ok(mid >= 0.099, `counted while fills run (${mid.toFixed(3)} s)`)
  ends.get(1)!()
  await a
  t.equal(fills.size, 1, 'one fill left')
  await sleep(50)
  ends.get(2)!()
  await b
  const t1 = performance.now()
  t.equal(fills.size, 0, 'none left')
  const after = fills.busySeconds()
  t.ok(after >= 0.149 && after <= (t1 - t0) / 1000, `one stretch of 150 ms or more, no longer than the test's (${after.toFixed(3)} s, ${((t1 - t0) / 1000).toFixed(3)} s wall)`)
  await sleep(60)
  t.equal(fills.busySeconds(), after, 'nothing added while no fill is in flight')

  const tc = performance.now()
  const c = started(3)
  await sleep(30)
  ends.get(3)!()
  await c
  const again = fills.busySeconds()
  t.ok(again - after >= 0.029 && again - after <= (performance.now() - tc) / 1000, `a second stretch adds its own time (${(again - after).toFixed(3)} s)`)
  t.equal((await metrics.fillBusy.get()).values[0]?.value, again, 'the counter shows it when scraped')
})
