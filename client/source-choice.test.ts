import t from 'tap'
import { chooseSource, markFailed, markServed, sourceOrder, type Source } from './source-choice.js'

/**
 * The choice rule over probes whose answers the test settles by hand: a
 * higher-ranked edge is waited for until the budget, the origin only when no
 * edge answered well, and failed sources go last.
 */
function deferred<A>() {
  let resolve!: (a: A | undefined) => void
  const answer = new Promise<A | undefined>(r => { resolve = r })
  return { answer, resolve }
}

t.test('a faster edge further down waits for the first edge within the budget', async t => {
  const a = deferred<string>(), b = deferred<string>()
  const chosen = chooseSource([{ kind: 'edge', ...a }, { kind: 'edge', ...b }], 10_000)
  b.resolve('b')
  await new Promise(r => setImmediate(r))
  a.resolve('a')
  t.equal(await chosen, 'a')
})

t.test('edges that failed their probe hand over to the next one at once', async t => {
  const a = deferred<string>(), b = deferred<string>(), o = deferred<string>()
  const chosen = chooseSource([{ kind: 'edge', ...a }, { kind: 'edge', ...b }, { kind: 'origin', ...o }], 10_000)
  o.resolve('origin')
  a.resolve(undefined)
  b.resolve('b')
  t.equal(await chosen, 'b', 'the second edge, not the origin that answered first')
})

t.test('the origin when every edge failed, without waiting for the budget', async t => {
  const a = deferred<string>(), o = deferred<string>()
  const chosen = chooseSource([{ kind: 'origin', ...o }, { kind: 'edge', ...a }], 10_000)
  o.resolve('origin')
  a.resolve(undefined)
  t.equal(await chosen, 'origin')
})

t.test('past the budget, the first to answer well; nothing at all is undefined', async t => {
  const a = deferred<string>(), o = deferred<string>()
  const chosen = chooseSource([{ kind: 'edge', ...a }, { kind: 'origin', ...o }], 1)
  o.resolve('origin')
  t.equal(await chosen, 'origin', 'the edge has not answered within the budget')
  a.resolve('a')
  const none = chooseSource([{ kind: 'edge', answer: Promise.resolve(undefined) }, { kind: 'origin', answer: Promise.resolve(undefined) }], 10_000)
  t.equal(await none, undefined)
})

t.test('reads use working edges in rank order, then the origin, then down sources, the one back soonest first', async t => {
  const s = (url: string, kind: 'edge' | 'origin', rank: number, downUntil = 0): Source => ({ url, kind, rank, rtt: 0, failures: downUntil ? 1 : 0, downUntil })
  const list = [s('o', 'origin', 2), s('b', 'edge', 1), s('a', 'edge', 0, 5000), s('c', 'edge', 3, 2000)]
  t.same(list.sort(sourceOrder(1000)).map(x => x.url), ['b', 'o', 'c', 'a'], 'at 1000 a and c are down')
  t.same(list.sort(sourceOrder(2000)).map(x => x.url), ['b', 'c', 'o', 'a'], 'at 2000 c is back, in front of the origin')
  t.same(list.sort(sourceOrder(5000)).map(x => x.url), ['a', 'b', 'c', 'o'], 'at 5000 every one is back, in /v1/play order')
})

t.test('a failure marks a source down for a backoff that doubles with each failure in a row, up to a cap; a served read clears it', async t => {
  const src: Source = { url: 'e', kind: 'edge', rank: 0, rtt: 0, failures: 0, downUntil: 0 }
  const b = { baseMs: 2000, maxMs: 30_000 }
  const downFor = (now: number) => { markFailed(src, now, b); return src.downUntil - now }
  t.same([downFor(0), downFor(10_000), downFor(20_000), downFor(30_000), downFor(40_000), downFor(50_000)], [2000, 4000, 8000, 16_000, 30_000, 30_000])
  for (let i = 0; i < 100; i++) markFailed(src, 0, b)
  t.equal(src.downUntil, 30_000, 'a hundred failures: still the cap')
  markServed(src)
  t.same([src.failures, src.downUntil], [0, 0], 'served: up')
  t.equal(downFor(60_000), 2000, 'the next failure starts over')
})
