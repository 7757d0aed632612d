import t from 'tap'
import { SessionTracker } from './session-tracker.js'
import { SessionAwarePolicy } from './session-policy.js'

const key = (title: string, i: number) => `${title}/${i}`

t.test('a live session wants its next chunks; moving, idling or leaving releases them', async t => {
  const s = new SessionTracker(3, 1000, key)
  s.observe('v1', 'film', 5, 0)
  t.same([5, 6, 7, 8, 9].map(i => s.wanted(`film/${i}`)), [0, 1, 1, 1, 0])
  s.observe('v2', 'film', 6, 10)
  t.equal(s.wanted('film/7'), 2, 'two trailing viewers')
  s.observe('v1', 'film', 6, 20)
  t.equal(s.wanted('film/6'), 0, 'v1 moved past chunk 6')
  t.equal(s.wanted('film/9'), 2)
  s.observe('v3', 'other', 0, 1500)
  t.equal(s.live, 1, 'v1 and v2 went idle for over a second and were dropped')
  t.equal(s.wanted('film/9'), 0)
})

t.test('memory is bounded and the horizon shrinks to the budget', async t => {
  const s = new SessionTracker(10, 60_000, key, 50, 20)
  for (let i = 0; i < 200; i++) s.observe(`v${i}`, `t${i}`, 0, i)
  t.equal(s.live, 50, 'the oldest sessions make way')
  t.equal(s.effectiveHorizon, 1, '20 chunks over 50 sessions: one chunk each')
  t.equal(s.wanted('t199/1'), 1)
  t.equal(s.wanted('t199/2'), 0, 'beyond the effective horizon')
  t.equal(s.wanted('t0/1'), 0, 'a dropped session protects nothing')
})

t.test('the session-aware policy keeps a chunk a trailing viewer is about to read', async t => {
  // room for 4 chunks; a leading viewer fills chunks 0..5 of 'film' while a trailing viewer is at chunk 0
  const p = new SessionAwarePolicy(40, 10, { horizon: 3, idleMs: 60_000, keyOf: key, protectShare: 4 })
  p.observe('trailing', 'film', 0, 0)
  const evicted: string[] = []
  for (let i = 0; i < 6; i++) {
    p.observe('leading', 'film', i, i)
    const k = `film/${i}`
    if (!p.has(k)) { p.miss(k); evicted.push(...p.insert(k, 10)) }
  }
  for (const k of ['film/1', 'film/2', 'film/3']) t.ok(p.has(k), `${k} kept for the trailing viewer`)
})

t.test('a rung switch moves a viewer\'s video stream to the new rendition; its audio stream stays', async t => {
  const s = new SessionTracker(2, 60_000, key)
  s.observe('v1#video', 'film/v720', 3, 0)
  s.observe('v1#audio', 'film/a128', 0, 1)
  t.same([4, 5].map(i => s.wanted(`film/v720/${i}`)), [1, 1], 'the rung it plays, ahead of it')
  t.equal(s.wanted('film/a128/1'), 1, 'and its audio')
  // down to v480 at the same time: in the smaller file that is chunk 1
  s.observe('v1#video', 'film/v480', 1, 2)
  t.same([4, 5].map(i => s.wanted(`film/v720/${i}`)), [0, 0], 'the old rung is released')
  t.same([1, 2, 3].map(i => s.wanted(`film/v480/${i}`)), [0, 1, 1], 'the new rung is protected from the switch on')
  t.equal(s.wanted('film/a128/1'), 1, 'the audio stream did not move')
  t.equal(s.live, 2, 'one viewer, two streams')
})

t.test('a session whose read stopped short of its chunk\'s end wants that chunk until a read reaches the end or it moves', async t => {
  const s = new SessionTracker(2, 60_000, key)
  s.observe('v1', 'film', 3, 0, true)
  t.same([3, 4, 5, 6].map(i => s.wanted(`film/${i}`)), [1, 1, 1, 0], 'the chunk it is in, then 2 ahead')
  s.observe('v1', 'film', 3, 1, true)
  t.equal(s.wanted('film/3'), 1, 'another range of it: counted once')
  s.observe('v1', 'film', 3, 2, false)
  t.equal(s.wanted('film/3'), 0, 'read to its end: released')
  s.observe('v1', 'film', 4, 3, true)
  s.observe('v2', 'film', 4, 4, true)
  t.equal(s.wanted('film/4'), 2)
  s.observe('v1', 'film', 5, 5, false)
  t.same([4, 5].map(i => s.wanted(`film/${i}`)), [1, 1], 'v1 moved on and read chunk 5 whole: only v2 holds 4, and v2 wants 5 next')
  s.observe('v3', 'other', 0, 70_000)
  t.equal(s.wanted('film/4'), 0, 'idle sessions release it')
  s.observe('w', 'film', 0, 70_001)
  t.equal(s.wanted('film/0'), 0, 'a whole-chunk read (a trace) leaves its chunk unprotected')
})
