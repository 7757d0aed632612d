import t from 'tap'
import { PlaybackClock } from './clock.js'

/** The playback clock, event by event on a clock the test moves. */
t.test('start-up, a stall at the exact moment the buffer ran out, and its end', async t => {
  const c = new PlaybackClock({ startupS: 2, resumeS: 4, durationS: 20 }, 100)
  t.equal(c.state, 'starting')
  c.mark(0, 2, 0)
  c.buffered(2, 101.5)
  t.equal(c.state, 'playing')
  t.equal(c.startupS, 1.5, 'start-up from creation to the first frame')
  c.mark(2, 4, 1)
  c.buffered(4, 102)
  t.equal(c.level(102), 3.5)
  t.equal(c.position(103), 1.5)
  // nothing more until 110: the buffer (4 s) ran out at 101.5 + 4 = 105.5
  t.equal(c.level(110), 0)
  t.equal(c.state, 'stalled')
  c.mark(4, 6, 1)
  c.buffered(6, 110)
  t.equal(c.state, 'stalled', 'resumes at resumeS buffered, not before')
  t.equal(c.level(110), 2, 'buffered 2 s ahead of the play position (4 s)')
  c.buffered(6, 110) // again: the same buffer end
  t.equal(c.state, 'stalled')
  c.mark(6, 8, 1)
  c.buffered(8, 111)
  t.equal(c.state, 'playing')
  t.same(c.stalls, [111 - 105.5], 'the stall from 105.5 to 111')
  c.finish(112)
  t.equal(c.playedS, 5, '4 s before the stall, 1 s after')
  t.same([...c.rungSeconds], [[0, 2], [1, 3]], 'seconds on screen per rung')
  t.same(c.playedRungs, [0, 1, 1], 'the segments whose start was played')
})

t.test('the title\'s end is not a stall', async t => {
  const c = new PlaybackClock({ startupS: 2, durationS: 4 }, 0)
  c.buffered(1, 0)
  t.equal(c.state, 'starting')
  c.buffered(4, 1)
  t.equal(c.state, 'playing')
  t.equal(c.level(3), 2)
  c.advance(10)
  t.equal(c.state, 'ended')
  t.same(c.stalls, [])
  t.equal(c.playedS, 4)
})

t.test('a short title starts once it is all buffered, whatever startupS says', async t => {
  const c = new PlaybackClock({ startupS: 10, durationS: 3 }, 0)
  c.buffered(3, 0.5)
  t.equal(c.state, 'playing')
  t.equal(c.startupS, 0.5)
})

t.test('a seek drops the buffer; the wait after it is a seek wait, not a stall', async t => {
  const c = new PlaybackClock({ startupS: 2, durationS: 100 }, 0)
  c.mark(0, 10, 2)
  c.buffered(10, 1)
  c.seek(50, 3)
  t.equal(c.state, 'seeking')
  t.equal(c.position(4), 50)
  t.equal(c.level(4), 0)
  c.mark(50, 52, 0)
  c.buffered(52, 4.5)
  t.equal(c.state, 'playing')
  t.same(c.seekWaits, [1.5])
  t.same(c.stalls, [])
  t.equal(c.rungAt(5), 0)
  c.finish(5)
  t.equal(c.playedS, 2.5, '2 s before the seek, 0.5 s after')
  t.same(c.playedRungs, [2, 0])
})

t.test('a stall still running at the end counts up to the end', async t => {
  const c = new PlaybackClock({ startupS: 1, durationS: 100 }, 0)
  c.buffered(1, 0)
  c.finish(5)
  t.same(c.stalls, [4], 'ran out at 1 s, ended at 5 s')
})

t.test('bad options are refused by name', async t => {
  t.throws(() => new PlaybackClock({ startupS: 1, durationS: 0 }, 0), /title longer than 0 s/)
})
