import t from 'tap'
import { chooseSource, sourceOrder, type Source } from './source-choice.js'

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

t.test('reads use working edges in rank order, then the origin, then failed sources', async t => {
  const s = (url: string, kind: 'edge' | 'origin', rank: number, failedAt = 0): Source => ({ url, kind, rank, rtt: 0, failedAt })
  const list = [s('o', 'origin', 2), s('b', 'edge', 1), s('a', 'edge', 0, 5), s('c', 'edge', 3, 2)]
  t.same(list.sort(sourceOrder).map(x => x.url), ['b', 'o', 'c', 'a'])
})
