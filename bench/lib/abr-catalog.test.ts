import t from 'tap'
import { abrId, singleId, titleLengths } from './abr-catalog.js'

t.test('title lengths run from the shortest to the longest in rank order, in whole 2 s segments', async t => {
  t.same(titleLengths({ titles: 8, minS: 30, maxS: 60 }), [30, 34, 38, 42, 48, 52, 56, 60])
  t.same(titleLengths({ titles: 1, minS: 31, maxS: 60 }), [32], 'one title: the shortest, rounded to a segment')
  t.same(titleLengths({ titles: 3, minS: 1, maxS: 1 }), [2, 2, 2], 'never shorter than a segment')
})

t.test('the two forms of a title have ids of their own', async t => {
  t.not(abrId(0), singleId(0))
  t.match(abrId(3), /^[a-z0-9-]+$/)
})
