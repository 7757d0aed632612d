import t from 'tap'
import { edgeMetrics, newRegistry } from '../../lib/metrics.js'
import { quietLogger } from '../../lib/logger.js'
import { UpstreamError } from '../../lib/errors.js'
import { Coalescer } from './coalesce.js'
import type { ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * The spare chunk buffer (issue 16, a cold miss's first byte): allocating a
 * chunk-sized Buffer sets off V8's GC work inside the allocation, so a
 * player's fill takes a buffer allocated ahead, and a new one is allocated
 * after a fill ends, off every player's path. Counted with the `alloc` hook.
 */
const SIZE = 1000
const ref = (i: number, size = SIZE): ChunkRef => ({ key: `m/${i}/x`, contentId: 'm', index: i, sha256: 'x', size })
const turn = () => new Promise<void>(resolve => setImmediate(resolve))

t.test('a player\'s fill takes the buffer allocated ahead; readahead and odd sizes allocate their own; a new spare after a fill ends', async t => {
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const allocated: Buffer[] = []
  const alloc = (n: number) => {
    const b = Buffer.allocUnsafeSlow(n)
    allocated.push(b)
    return b
  }
  // chunk 9's request fails at once (a 404: final); the others never answer, so their fills stay in flight until close()
  const fetch: ChunkFetch = r => r.index === 9 ? Promise.reject(new UpstreamError('gone')) : new Promise(() => {})
  const fills = new Coalescer({ fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge') },
    { maxFills: 8, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0, alloc, spareBytes: SIZE })
  t.teardown(() => fills.close())

  fills.prepare()
  t.equal(allocated.length, 1, 'the spare is allocated at prepare, before any miss')
  const spare = allocated[0]
  t.equal(fills.prefetch(ref(1)), 'started')
  t.equal(allocated.length, 2, 'readahead allocates its own buffer')
  const player = fills.join(ref(2), 0)!
  t.equal(allocated.length, 2, 'the player\'s miss allocates nothing')
  t.equal(player.fill.buf, spare, 'it took the spare')
  fills.join(ref(3, SIZE / 2), 0)
  t.equal(allocated.length, 3, 'the last, shorter chunk of a file allocates its size')
  const failing = fills.join(ref(9), 0)!
  t.equal(allocated.length, 4, 'no spare left: the next miss allocates')
  await failing.fill.done.catch(() => {})
  await turn()
  await turn()
  t.equal(allocated.length, 5, 'a fill ended: a new spare, in a turn of its own')
  const next = fills.join(ref(4), 0)!
  t.equal(next.fill.buf, allocated[4], 'the next miss takes it')
  t.equal(allocated.length, 5)
})

t.test('the spare\'s pages are written once each behind it, a slice a turn, and not after a fill took it', async t => {
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const BIG = 8 * 1024 * 1024
  const fetch: ChunkFetch = () => new Promise(() => {})
  const fills = new Coalescer({ fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge') },
    { maxFills: 8, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0, alloc: n => Buffer.alloc(n, 0xff), spareBytes: BIG })
  t.teardown(() => fills.close())
  const pages = (b: Buffer) => { let n = 0; for (let off = 0; off < b.length; off += 4096) if (b[off] === 0) n++; return n }
  fills.prepare()
  const first = fills.join(ref(1, BIG), 0)!.fill.buf
  t.ok(pages(first) > 0 && pages(first) < BIG / 4096, 'taken at once: only the first slice was written')
  const before = pages(first)
  first[BIG - 4096] = 0xff
  for (let i = 0; i < 8; i++) await turn()
  t.equal(pages(first), before, 'nothing written into it once a fill had it')
  t.equal(first[BIG - 4096], 0xff)
  // the fill ends (closed below); a spare prepared and left alone is written through, one page at a time
  fills.prepare()
  const spare = (fills as unknown as { spare: Buffer }).spare
  for (let i = 0; i < 8; i++) await turn()
  t.equal(pages(spare), BIG / 4096, 'every page of the spare was written')
  t.equal(spare.indexOf(0xff), 1, 'one byte a page, not the whole buffer')
})

t.test('a spare the pool can fault in (the splice addon\'s memory) is handed to it: the event loop writes none of its pages', async t => {
  const metrics = edgeMetrics(newRegistry('edge', false), { tier: () => ({ bytes: 0, entries: 0, capacity: 0 }), fillsInFlight: () => 0 })
  const BIG = 8 * 1024 * 1024
  const fetch: ChunkFetch = () => new Promise(() => {})
  const handed: Buffer[] = []
  let answer = true
  const fills = new Coalescer({ fetch, cached: () => false, commit: () => {}, stale: () => {}, metrics, logger: quietLogger('edge') },
    { maxFills: 8, fillTimeoutMs: 60_000, splitBytes: 2 ** 30, maxSegments: 4, retries: 0, retryBackoffMs: 0, alloc: n => Buffer.alloc(n, 0xff), spareBytes: BIG,
      populate: b => { handed.push(b); return Promise.resolve(answer) } })
  t.teardown(() => fills.close())
  const spareOf = () => (fills as unknown as { spare: Buffer }).spare
  fills.prepare()
  const spare = spareOf()
  // as many turns as writing it through a huge page a turn would take, and then some
  for (let i = 0; i < 3 * BIG / (2 * 1024 * 1024); i++) await turn()
  t.same(handed, [spare], 'the spare went to the pool')
  t.equal(spare.indexOf(0), -1, 'not a byte written on the event loop')
  // the pool could not (another kernel): the event loop writes it in after all
  answer = false
  fills.join(ref(1, BIG), 0)
  fills.prepare()
  const next = spareOf()
  t.not(next, spare, 'a new spare once the first was taken')
  for (let i = 0; i < 3 * BIG / (2 * 1024 * 1024); i++) await turn()
  t.equal(handed.at(-1), next)
  t.equal(next.indexOf(0xff), 1, 'written in, one byte a page')
})
