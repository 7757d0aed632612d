import t, { type Test } from 'tap'
import { join } from 'node:path'
import { Sessions } from './sessions.js'

const pos = (contentId: string, position: number, at: number) => ({ contentId, position, size: 1000, updatedAt: at })

function store(t: Test, opts: { maxViewers: number; historyLength: number; ttlMs: number }, clock: () => number, file = ':memory:') {
  const s = new Sessions(file, opts, clock)
  t.teardown(() => s.close())
  return s
}

t.test('a viewer\'s last position per title, history most recent first, bounded per viewer', async t => {
  let now = 0
  const s = store(t, { maxViewers: 10, historyLength: 2, ttlMs: 60_000 }, () => now)
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
  const s = store(t, { maxViewers: 2, historyLength: 5, ttlMs: 60_000 }, () => now)
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
  t.same(s.history('old'), [], 'its history too')
  t.equal(s.get('new', 'a')!.position, 5, 'a report refreshes the viewer\'s lifetime')
  s.sweep()
  t.equal(s.size, 1, 'a sweep deletes the expired viewer')
  s.report('old', pos('c', 6, now))
  t.same(s.history('old').map(p => p.contentId), ['c'], 'an expired viewer coming back starts with an empty history')
})

t.test('a reopened store keeps positions, history order and bounds; a smaller bound applies at open', async t => {
  const file = join(t.testdir(), 'sessions.sqlite')
  let now = 5000
  const a = new Sessions(file, { maxViewers: 3, historyLength: 3, ttlMs: 60_000 }, () => now)
  a.report('v1', pos('x', 100, now))
  a.report('v1', pos('y', 200, now))
  a.report('v2', pos('x', 300, now))
  a.report('v3', pos('x', 400, now))
  a.close()
  const b = store(t, { maxViewers: 3, historyLength: 3, ttlMs: 60_000 }, () => now, file)
  t.equal(b.get('v1', 'x')!.position, 100, 'a restart keeps the positions')
  t.same(b.history('v1').map(p => p.contentId), ['y', 'x'], 'and the order of reports in one millisecond')
  b.report('v1', pos('z', 1, now))
  b.report('v4', pos('x', 500, now))
  t.equal(b.size, 3)
  t.equal(b.get('v2', 'x'), undefined, 'the least recently active viewer before the restart leaves first')
  t.equal(b.get('v3', 'x')!.position, 400)
  b.close()
  now += 10_000
  const c = store(t, { maxViewers: 1, historyLength: 3, ttlMs: 60_000 }, () => now, file)
  t.equal(c.size, 1, 'maxViewers lowered: applied at open')
  t.equal(c.get('v4', 'x')!.position, 500, 'the most recently active stays')
  now += 60_000
  const d = store(t, { maxViewers: 1, historyLength: 3, ttlMs: 60_000 }, () => now, file)
  t.equal(d.size, 0, 'expired viewers are swept at open')
})

t.test('an unusable store file is a StorageError naming it', async t => {
  const dir = t.testdir({ 'junk.sqlite': 'this is not a database, and it is long enough to be read as one'.repeat(20) })
  t.throws(() => new Sessions(join(dir, 'junk.sqlite'), { maxViewers: 1, historyLength: 1, ttlMs: 1000 }), { code: 'CDN_ERR_STORAGE', message: /junk\.sqlite/ })
})

t.test('reports are queued and written in batches: every read sees them, close writes what is queued', async t => {
  const file = join(t.testdir(), 'sessions.sqlite')
  const opts = { maxViewers: 10_000, historyLength: 5, ttlMs: 60_000 }
  const a = new Sessions(file, opts, () => 1000)
  for (let i = 0; i < 1500; i++) a.report(`v${i}`, pos('x', i, 1000)) // past one full batch, and a partial one queued
  const peek = new Sessions(file, opts, () => 1000)
  t.ok(peek.size >= 512 && peek.size < 1500, `a full batch is written at once, the rest waits (${peek.size} on disk)`)
  peek.close()
  t.equal(a.get('v1499', 'x')!.position, 1499, 'a read flushes first: the last report is seen')
  a.report('late', pos('y', 7, 1000))
  a.close()
  const b = store(t, opts, () => 1000, file)
  t.equal(b.size, 1501, 'close wrote the queued report')
  t.equal(b.get('late', 'y')!.position, 7)
  t.throws(() => a.report('after', pos('y', 1, 1000)), { code: 'CDN_ERR_STORAGE', message: /closed/ })
})
