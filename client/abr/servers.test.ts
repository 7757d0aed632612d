import t from 'tap'
import type { Source } from '../source-choice.js'
import { PlayerServers } from './servers.js'

const src = (url: string, rank: number, kind: 'edge' | 'origin' = 'edge'): Source => ({ url, kind, rank, rtt: 0, failures: 0, downUntil: 0 })

t.test('a failover goes to the next edge, and back once the backoff has passed; the origin is last', async t => {
  let now = 0
  const [a, b, o] = [src('a', 0), src('b', 1), src('o', 2, 'origin')]
  const s = new PlayerServers([o, b, a], { baseMs: 2000, maxMs: 30_000 }, () => now)
  t.equal(s.current, a, 'the first edge, whatever order they came in')
  t.ok(s.failed(a), 'the current server changed')
  t.equal(s.current, b)
  t.same(s.others(), [o], 'a is down: not among the others')
  now = 1999
  t.notOk(s.returnFromFailover(), 'not before its backoff')
  now = 2000
  t.ok(s.returnFromFailover())
  t.equal(s.current, a, 'back on its edge')
  t.equal(s.failovers, 1)
  t.ok(s.failed(a))
  t.equal(a.downUntil, 2000 + 4000, 'a second failure in a row doubles the backoff')
  s.served(a)
  t.equal(a.failures, 0, 'an answer clears its failures')
})

t.test('a trial that fails leaves the current server; a switch for quality is not gone back from', async t => {
  let now = 0
  const [a, b] = [src('a', 0), src('b', 1)]
  const s = new PlayerServers([a, b], undefined, () => now)
  t.notOk(s.failed(b), 'b was a trial: a stays current')
  t.equal(s.current, a)
  s.failed(a)
  t.equal(s.current, b, 'b is down too, but the only other: tried all the same')
  s.switchedTo(a)
  now = 60_000
  t.notOk(s.returnFromFailover(), 'nothing to go back to after a chosen switch')
  t.equal(s.current, a)
})
