import t from 'tap'
import { spread } from './fill-grants.js'

t.test('spread rotates the healthy owners from one answer to the next and keeps down ones last', async t => {
  const up = (s: string) => !s.endsWith('!')
  t.same(spread(['a', 'b', 'c'], up, 0), ['a', 'b', 'c'])
  t.same(spread(['a', 'b', 'c'], up, 1), ['b', 'c', 'a'])
  t.same(spread(['a', 'b', 'c'], up, 5), ['c', 'a', 'b'])
  t.same(spread(['a', 'b', 'c!'], up, 1), ['b', 'a', 'c!'], 'the down owner stays last')
  t.same(spread(['a', 'b!'], up, 1), ['a', 'b!'], 'one healthy owner: nothing to rotate')
  t.same(spread([], up, 3), [])
})
