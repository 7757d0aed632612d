import t from 'tap'
import { MergedCounts, WindowCounter } from './window-counter.js'

const MIN = 60_000
const t0 = 1_800_000_000_000

t.test('counts slide out of each window on time', async t => {
  const c = new WindowCounter()
  c.add('a', 5, t0)
  c.add('a', 2, t0 + 2 * MIN)
  t.equal(c.total('a', '5m', t0 + 2 * MIN), 7)
  t.equal(c.total('a', '5m', t0 + 6 * MIN), 2, 'the first report left the 5 minute window')
  t.equal(c.total('a', '1h', t0 + 6 * MIN), 7)
  t.equal(c.total('a', '1h', t0 + 61 * MIN), 2)
  t.equal(c.total('a', '1h', t0 + 63 * MIN), 0)
  t.equal(c.total('a', '24h', t0 + 23 * 60 * MIN), 7)
  t.equal(c.total('a', '24h', t0 + 25 * 60 * MIN), 0)
  t.equal(c.total('missing', '1h', t0), 0)
})

t.test('a long silence clears the ring without walking it bucket by bucket', async t => {
  const c = new WindowCounter()
  c.add('a', 1, t0)
  c.add('a', 1, t0 + 365 * 24 * 60 * MIN)
  t.equal(c.total('a', '24h', t0 + 365 * 24 * 60 * MIN), 1)
  c.prune(t0 + 367 * 24 * 60 * MIN)
  t.equal(c.size, 0, 'idle keys are pruned')
})

t.test('a snapshot restores the same counts', async t => {
  const c = new WindowCounter()
  for (let i = 0; i < 100; i++) c.add(`k${i % 7}`, i, t0 + i * 1000)
  const back = WindowCounter.restore(JSON.parse(JSON.stringify(c.snapshot())))
  for (let k = 0; k < 7; k++) for (const w of ['5m', '1h', '24h'] as const)
    t.equal(back.total(`k${k}`, w, t0 + 100_000), c.total(`k${k}`, w, t0 + 100_000))
  t.equal(WindowCounter.restore({ bad: [{ head: 1, counts: [1] }] } as never).size, 0, 'malformed state is ignored')
})

t.test('merging peers is idempotent and sums across routers', async t => {
  const a = new WindowCounter()
  const b = new WindowCounter()
  a.add('film', 3, t0)
  b.add('film', 4, t0)
  const m = new MergedCounts('r1', a)
  m.mergePeer('r2', 10, b.snapshot())
  m.mergePeer('r2', 10, b.snapshot())
  t.equal(m.total('film', '1h', t0), 7, 'the same state twice counts once')
  b.add('film', 1, t0)
  m.mergePeer('r2', 5, b.snapshot())
  t.equal(m.total('film', '1h', t0), 7, 'an older state does not replace a newer one')
  m.mergePeer('r2', 11, b.snapshot())
  t.equal(m.total('film', '1h', t0), 8)
  m.mergePeer('r1', 99, b.snapshot())
  t.equal(m.total('film', '1h', t0), 8, 'its own id is never merged as a peer')
})

t.test('a late report lands in its own bucket, or nowhere once it has slid out', async t => {
  const c = new WindowCounter()
  c.add('a', 1, t0 + 10 * MIN)
  c.add('a', 2, t0 + 8 * MIN)
  t.equal(c.total('a', '5m', t0 + 10 * MIN), 3)
  t.equal(c.total('a', '5m', t0 + 13.5 * MIN), 1, 'the late report slides out on its own time')
  c.add('a', 100, t0)
  t.equal(c.total('a', '5m', t0 + 13.5 * MIN), 1, 'too old for the 5 minute window')
  t.equal(c.total('a', '1h', t0 + 13.5 * MIN), 103)
})
