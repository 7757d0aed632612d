import t from 'tap'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { UpstreamError } from '../../lib/errors.js'
import { Coalescer } from './coalesce.js'
import type { ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * Coalescer.leave: a waiting fill whose every asker left is withdrawn, and
 * only then: not one that started, not one another player or a prefill
 * still wants. A withdrawn fill never held a slot, so the slots stay
 * counted right (at most maxFills running at once afterwards).
 */
const SIZE = 1000
const ref = (i: number): ChunkRef => ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: 'x', size: SIZE })

function setup(t: { teardown(fn: () => unknown): void }) {
  const asked: number[] = []
  const ends = new Map<number, () => void>()
  // each fill's upstream request is recorded and fails when the test says: that fill ends
  const fetch: ChunkFetch = r => { asked.push(r.index); return new Promise((_, reject) => { ends.set(r.index, () => reject(new UpstreamError('ended by the test'))) }) }
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0, fillBusySeconds: () => 0 })
  const fills = new Coalescer({ fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge') },
    { maxFills: 1, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0 })
  t.teardown(() => fills.close())
  const tick = () => new Promise(r => setImmediate(r))
  return { fills, asked, ends, metrics, tick }
}

t.test('withdrawn only when waiting and wanted by no one; the slots stay counted right', async t => {
  const { fills, asked, ends, metrics, tick } = setup(t)
  const a = fills.join(ref(0), 0)!.fill
  a.done.catch(() => {})
  await tick()
  t.same(asked, [0], 'the first fill runs')
  // two players wait for chunk 1; one leaves: it stays
  const b = fills.join(ref(1), 0)!.fill
  b.done.catch(() => {})
  t.equal(fills.join(ref(1), 0)!.fill, b, 'joined')
  fills.leave(b)
  t.ok(fills.has(ref(1).key), 'another player still waits for it')
  fills.leave(b)
  t.notOk(fills.has(ref(1).key), 'withdrawn once the last one left')
  await t.rejects(b.done, { name: 'ClientClosedError' })
  // a prefill joined a waiting fill: the player's leaving does not withdraw it
  const c = fills.join(ref(2), 0)!.fill
  c.done.catch(() => {})
  t.equal(fills.prefill(ref(2)).result, 'joined')
  fills.leave(c)
  t.ok(fills.has(ref(2).key), 'the prefill still wants it')
  // the running fill: leaving does nothing to it
  fills.leave(a)
  t.ok(fills.has(ref(0).key), 'a started fill goes on')
  const d = fills.join(ref(3), 0)!.fill
  d.done.catch(() => {})
  ends.get(0)!()
  await tick()
  await tick()
  t.same(asked, [0, 2], 'the slot went to chunk 2, never to the withdrawn chunk 1; chunk 3 still waits (one slot)')
  ends.get(2)!()
  await tick()
  await tick()
  t.same(asked, [0, 2, 3], 'then chunk 3')
  ends.get(3)!()
  await tick()
  t.equal(fills.size, 0)
  const failures = Object.fromEntries((await metrics.fillFailures.get()).values.map(v => [v.labels.reason, v.value]))
  t.equal(failures.withdrawn, 1)
  t.equal(failures.upstream, 3, 'the three that ran and were ended by the test')
})
