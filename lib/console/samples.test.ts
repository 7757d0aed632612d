import t from 'tap'
import { intervals, SampleRing } from './samples.js'

t.test('the ring keeps at most its capacity, oldest dropped first', async t => {
  let n = 0
  const ring = new SampleRing(async () => ({ c: n }), 3, 10_000)
  for (let i = 0; i < 10; i++) {
    n = i * 100
    await ring.sample(i * 10_000)
  }
  t.equal(ring.size, 3, 'bounded')
  const s = await ring.withNow(95_000)
  t.same(s.map(x => x.at), [70_000, 80_000, 90_000, 95_000], 'the three newest, and now')
})

t.test('intervals: per-interval rates and ratios from cumulative counters, empty intervals skipped', async t => {
  const samples = [
    { at: 0, v: { hit: 0, all: 0 } },
    { at: 10_000, v: { hit: 50, all: 100 } },
    { at: 20_000, v: { hit: 50, all: 100 } },
    { at: 30_000, v: { hit: 140, all: 200 } },
  ]
  t.same(intervals(samples, (d, s) => d.all / s), [[10_000, 10], [20_000, 0], [30_000, 10]], 'bytes per second')
  t.same(intervals(samples, d => (d.all > 0 ? d.hit / d.all : null)), [[10_000, 0.5], [30_000, 0.9]], 'ratio of differences, idle intervals left out')
})

t.test('withNow takes no second reading right after a sample', async t => {
  let reads = 0
  const ring = new SampleRing(async () => ({ c: ++reads }), 360, 10_000)
  await ring.sample(1000)
  t.equal((await ring.withNow(1050)).length, 1, 'the sample is now')
  t.equal((await ring.withNow(5000)).length, 2, 'later: the counters as they are, appended')
  t.equal(ring.size, 1, 'the appended reading is not kept')
})
