import t from 'tap'
import { RefusedCopies } from './refused-copies.js'

const shards = ['a', 'b', 'c'].map(id => ({ id }))

t.test('a refused copy goes last, in order; others keep theirs', async t => {
  const counts: string[] = []
  const r = new RefusedCopies({ ttlMs: 1000, max: 10, count: e => counts.push(e), now: () => 0 })
  t.equal(r.order(shards, 'k'), shards, 'nothing remembered: the same order, not a copy')
  r.note('a', 'k')
  r.note('a', 'k')
  t.same(counts, ['noted'], 'a second refusal of the same copy is not counted again')
  t.same(r.order(shards, 'k').map(s => s.id), ['b', 'c', 'a'])
  t.same(r.order(shards, 'other').map(s => s.id), ['a', 'b', 'c'], 'another chunk on that shard is not affected')
  r.note('b', 'k')
  t.same(r.order(shards, 'k').map(s => s.id), ['c', 'a', 'b'], 'two refused: both last, in read order')
  t.same(counts, ['noted', 'avoided', 'noted', 'avoided', 'avoided'])
})

t.test('forgotten once stored or read again, and after ttlMs', async t => {
  let now = 0
  const counts: string[] = []
  const r = new RefusedCopies({ ttlMs: 1000, max: 10, count: e => counts.push(e), now: () => now })
  r.note('a', 'k')
  r.forget('a', 'k')
  r.forget('a', 'k')
  t.same(counts, ['noted', 'cleared'], 'cleared once')
  t.notOk(r.has('a', 'k'))
  r.note('a', 'k')
  now = 999
  t.ok(r.has('a', 'k'), 'remembered within ttlMs')
  now = 1000
  t.notOk(r.has('a', 'k'), 'not past it: the copy is asked again')
  t.equal(r.size, 0, 'and the entry is gone')
})

t.test('at most `max` copies remembered: the least recently refused go first', async t => {
  const r = new RefusedCopies({ ttlMs: 1000, max: 2, now: () => 0 })
  r.note('a', 'k1')
  r.note('a', 'k2')
  r.note('a', 'k1')
  r.note('a', 'k3')
  t.equal(r.size, 2)
  t.ok(r.has('a', 'k1'), 'refused again lately: kept')
  t.notOk(r.has('a', 'k2'), 'the oldest refusal dropped')
  t.ok(r.has('a', 'k3'))
  t.throws(() => new RefusedCopies({ ttlMs: 1, max: 0 }), /expected router.refusedCopies.max to be a positive integer, got 0/)
})
