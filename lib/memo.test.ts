import t from 'tap'
import { memoized } from './memo.js'

t.test('memoized: each argument computed once while kept; past the bound it starts over and still answers right', async t => {
  const calls: number[] = []
  const sq = memoized(3, (n: number) => { calls.push(n); return n * n })
  t.same([sq(2), sq(2), sq(3), sq(2)], [4, 4, 9, 4])
  t.same(calls, [2, 3], 'computed once each')
  t.same([sq(4), sq(5)], [16, 25], 'the fourth argument clears the three kept')
  t.same(calls, [2, 3, 4, 5])
  t.equal(sq(2), 4, 'a cleared one is computed again')
  t.same(calls, [2, 3, 4, 5, 2])
})
