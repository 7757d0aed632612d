import t from 'tap'
import { Sessions } from './sessions.js'

const pos = (contentId: string, position: number, at: number) => ({ contentId, position, size: 1000, updatedAt: at })

t.test('a viewer\'s last position per title, history most recent first, bounded per viewer', async t => {
  let now = 0
  const s = new Sessions({ maxViewers: 10, historyLength: 2, ttlMs: 60_000 }, () => now)
  s.report('v', pos('a', 10, now))
  s.report('v', pos('b', 20, now))
  s.report('v', pos('a', 30, now))
  t.equal(s.get('v', 'a')!.position, 30, 'the last report wins')
  t.same(s.history('v').map(p => p.contentId), ['a', 'b'])
  s.report('v', pos('c', 1, now))
  t.same(s.history('v').map(p => p.contentId), ['c', 'a'], 'the oldest title leaves past historyLength')
  t.equal(s.get('v', 'b'), undefined)
})

t.test('viewers are bounded (least recently active leave first) and expire', async t => {
  let now = 1000
  const s = new Sessions({ maxViewers: 2, historyLength: 5, ttlMs: 60_000 }, () => now)
  s.report('old', pos('a', 1, now))
  s.report('mid', pos('a', 2, now))
  s.report('old', pos('b', 3, now)) // old is now the most recent
  s.report('new', pos('a', 4, now))
  t.equal(s.size, 2)
  t.equal(s.get('mid', 'a'), undefined, 'the least recently active viewer left')
  t.equal(s.get('old', 'b')!.position, 3)
  now += 59_000
  s.report('new', pos('a', 5, now))
  now += 2_000
  t.equal(s.get('old', 'b'), undefined, 'no report for ttlMs: expired')
  t.equal(s.get('new', 'a')!.position, 5, 'a report refreshes the viewer\'s lifetime')
})
