import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { NotFoundError } from '../../lib/errors.js'
import { ChunkArena, dropChunk, holdChunk } from '../tiers/chunk-arena.js'
import { Coalescer } from './coalesce.js'
import type { ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * A fill's chunk memory (edge/tiers/chunk-arena.ts) goes back to the arena only
 * once the fill has settled and every holder has let go: the tier it was
 * committed to, and the readers that joined it, before it had memory too.
 */
const SIZE = 64 * 1024
const bytesOf = (i: number) => Buffer.alloc(SIZE, i)
const ref = (i: number): ChunkRef =>
  ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: createHash('sha256').update(bytesOf(i)).digest('hex'), size: SIZE })

function setup(t: Test, fetch?: ChunkFetch) {
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const arena = new ChunkArena(SIZE, 4)
  const committed: Buffer[] = []
  const body: ChunkFetch = async (r, from, to) => Object.assign((async function* () { yield bytesOf(r.index).subarray(from, to) })(), { destroy() {} })
  const fills = new Coalescer({
    fetch: fetch ?? body, stale: () => {}, metrics, logger: quietLogger('edge'), cached: () => false,
    // the RAM tier keeps what it is given: one hold, until the test evicts it
    commit: (_ref, buf) => { holdChunk(buf); committed.push(buf) },
  }, { maxFills: 1, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0, alloc: s => arena.take(s) })
  t.teardown(() => fills.close())
  return { arena, fills, committed }
}

t.test('a fill\'s memory is reused only after its commit, its tier and its readers let go, holds from before it had memory included', async t => {
  const { arena, fills, committed } = setup(t)
  const f1 = fills.join(ref(1), 0)!.fill
  f1.hold() // a player reading it
  const f2 = fills.join(ref(2), 0)!.fill // waits for the one fill slot: no memory yet
  f2.hold() // a player joined it before it started
  t.equal(arena.stats().allocated, 1, 'the waiting fill holds no memory')

  t.ok((await f1.done).equals(bytesOf(1)))
  t.equal(arena.stats().allocated, 2, 'the second fill started as the first settled; the first one\'s memory is still held')
  dropChunk(committed[0]!) // the tier evicts chunk 1
  t.equal(arena.stats().idleBytes, 0, 'its reader still holds it')
  f1.drop()
  t.equal(arena.stats().idleBytes, SIZE, 'now nothing does')

  t.ok((await f2.done).equals(bytesOf(2)))
  dropChunk(committed[1]!)
  t.equal(arena.stats().idleBytes, SIZE, 'the hold taken before the second fill had memory counts')
  f2.drop()
  t.equal(arena.stats().idleBytes, 2 * SIZE)

  const f3 = fills.join(ref(3), 0)!.fill
  t.ok((await f3.done).equals(bytesOf(3)), 'a reused slot fills with the right bytes')
  t.same(arena.stats(), { idleBytes: SIZE, reservedLeft: 0, allocated: 2, reserved: 0, reused: 1, prefaulted: 0, prefaultPending: 0 })
})

t.test('a failed fill lets its memory go once its readers do', async t => {
  const { arena, fills, committed } = setup(t, async r => { throw new NotFoundError(`chunk ${r.key}`) })
  const f = fills.join(ref(1), 0)!.fill
  f.hold()
  await t.rejects(f.done)
  await new Promise(r => setImmediate(r))
  t.equal(committed.length, 0)
  t.equal(arena.stats().idleBytes, 0, 'its reader still holds it')
  f.drop()
  t.equal(arena.stats().idleBytes, SIZE)
})
