import t from 'tap'
import { tallies, AHEAD_KINDS } from '../../lib/metrics.js'
import { FetchedAhead } from './fetched-ahead.js'
import type { ChunkRef } from '../title.js'

/** The ledger over a set of keys the test says are alive (cached, being written or in flight). */
function ledger() {
  const alive = new Set<string>()
  const unread = tallies(AHEAD_KINDS)
  return { alive, unread, ahead: new FetchedAhead(k => alive.has(k), unread) }
}
const ref = (i: number, size = 100): ChunkRef => ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: 'x', size })

t.test('a chunk fetched ahead and read costs nothing; one that leaves unread is counted once, by who fetched it', async t => {
  const { alive, unread, ahead } = ledger()
  for (const i of [0, 1]) { alive.add(ref(i).key); ahead.started(ref(i)); ahead.committed(ref(i), false) }
  ahead.committed(ref(2, 50), true)
  alive.add(ref(2).key)
  ahead.read(ref(0).key)
  alive.delete(ref(0).key)
  alive.delete(ref(1).key)
  alive.delete(ref(2).key)
  ahead.sweep()
  ahead.sweep()
  t.same([unread.readahead.n, unread.prefill.n], [100, 50])
  t.equal(ahead.size, 0)
})

t.test('a fill that failed is not waste; a miss or a new fetch proves the old copy gone at once', async t => {
  const { alive, unread, ahead } = ledger()
  ahead.started(ref(0))
  ahead.sweep() // not alive, never committed: its fill failed
  t.equal(unread.readahead.n, 0)
  alive.add(ref(1).key)
  ahead.started(ref(1))
  ahead.committed(ref(1), false)
  ahead.missed(ref(1).key) // a player missed it: the copy is gone, whatever the tiers say now
  t.equal(unread.readahead.n, 100)
  ahead.committed(ref(2), true)
  ahead.started(ref(2)) // readahead fetches it again: the prefilled copy left unread
  t.same([unread.readahead.n, unread.prefill.n], [100, 100])
  ahead.read(ref(2).key)
  ahead.sweep()
  t.equal(ahead.size, 0)
})
