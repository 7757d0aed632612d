import t from 'tap'
import { Throughput } from './throughput.js'

/** Points at late timer ticks and an end just after one: the rates times their intervals add up to every byte. */
t.test('rates over the interval each point spans, adding up to every byte', async t => {
  const tp = new Throughput()
  // a 1 s timer on a loaded loop: ticks at 1.1 s and 2.35 s, the run ends 20 ms after the second with nothing more
  const a = tp.point(1.1, 1_100_000, 11)
  t.same(a, { t: 1.1, mbps: 1, rps: 10 }, 'the first second\'s 1.1 MB over 1.1 s is 1 MB/s, not 1.1')
  const b = tp.point(2.35, 3_600_000, 36)
  t.equal(b.mbps, 2)
  t.equal(b.rps, 20)
  t.equal(tp.end(2.37, 3_600_000, 36), undefined, 'nothing came in the last 20 ms: no point')
  const points = [a, b]
  t.equal(points.reduce((s, p, i) => s + p.mbps * (p.t - (points[i - 1]?.t ?? 0)), 0) * 1e6, 3_600_000)
})

t.test('the end\'s part-second, however short, when bytes came in it', async t => {
  const tp = new Throughput()
  tp.point(1, 1_000_000)
  const last = tp.end(1.01, 1_050_000)
  t.same(last && { ...last, mbps: Math.round(last.mbps * 1000) / 1000 }, { t: 1.01, mbps: 5, rps: 0 }, '50 kB in 10 ms')
  t.same(tp.end(1.2, 1_050_000), { t: 1.2, mbps: 0, rps: 0 }, 'a quiet end past 50 ms: a point at 0')
})
