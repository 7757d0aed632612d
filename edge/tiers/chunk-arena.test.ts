import t from 'tap'
import { ChunkArena, dropChunk, escapeChunk, heldForWrite, holdChunk } from './chunk-arena.js'
import { populate, ZERO_COPY_AVAILABLE, ZERO_COPY_MISSING, zeroCopyChunk } from '../../lib/net/zero-copy.js'
import { RamTier } from './ram-tier.js'
import { createPolicy } from '../policy/policy.js'

/**
 * The arena's one promise: a slot is handed out again only once every hold on
 * it was dropped. Holders here stand for the fill, the RAM tier, the disk
 * write queue and a player's write.
 */
const SIZE = 4096

t.test('a slot is reused only once every holder has dropped it', async t => {
  const arena = new ChunkArena(SIZE, 4)
  const a = arena.take(SIZE) // the fill's own hold
  a.fill(1)
  holdChunk(a) // the RAM tier
  const written = heldForWrite(a)! // a player's write still in the socket
  dropChunk(a) // the fill committed
  dropChunk(a) // the RAM tier evicted it
  const b = arena.take(SIZE)
  t.not(b, a, 'a slot a write still holds is not given to the next fill')
  b.fill(2)
  t.ok(a.every(x => x === 1), 'the held slot still has its bytes')
  written(new Error('EPIPE'))
  t.not(arena.take(SIZE), a, 'a failed write keeps its hold: the slot is never reused')
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 0, allocated: 3, reserved: 0, reused: 0, prefaulted: 0, prefaultPending: 0 })

  const c = arena.take(SIZE)
  const w = heldForWrite(c)!
  dropChunk(c)
  t.equal(arena.stats().idleBytes, 0, 'held by a write: not idle')
  w()
  t.equal(arena.stats().idleBytes, SIZE, 'the write is done: idle')
  t.equal(arena.take(SIZE), c, 'and the next fill writes into it')
  t.equal(arena.stats().reused, 1)
})

t.test('holding an idle slot or dropping one more often than held throws', async t => {
  const arena = new ChunkArena(SIZE, 4)
  const a = arena.take(SIZE)
  dropChunk(a)
  t.throws(() => holdChunk(a), /held while idle/)
  t.throws(() => dropChunk(a), /dropped more often than held/)
})

t.test('other sizes, escaped slots and slots past `keep` are left to the GC', async t => {
  const arena = new ChunkArena(SIZE, 2)
  const odd = arena.take(100)
  t.equal(odd.length, 100)
  holdChunk(odd) // not a slot: holds are no-ops
  dropChunk(odd)
  dropChunk(odd)
  t.equal(heldForWrite(odd), undefined)

  const shared = arena.take(SIZE)
  escapeChunk(shared) // posted to the serve threads
  dropChunk(shared)
  t.equal(arena.stats().idleBytes, 0, 'an escaped slot never becomes idle')

  const xs = [arena.take(SIZE), arena.take(SIZE), arena.take(SIZE)]
  for (const x of xs) dropChunk(x)
  t.equal(arena.stats().idleBytes, 2 * SIZE, 'at most `keep` idle slots')
  arena.resize(2 * SIZE)
  t.equal(arena.stats().idleBytes, 0, 'a new chunk size drops the idle slots')
  const big = arena.take(2 * SIZE)
  dropChunk(big)
  t.equal(arena.take(2 * SIZE), big)
})

t.test('slots come from the allocator given (shared memory with serve threads)', async t => {
  const arena = new ChunkArena(SIZE, 1, size => Buffer.from(new SharedArrayBuffer(size)))
  const a = arena.take(SIZE)
  t.ok(a.buffer instanceof SharedArrayBuffer)
  dropChunk(a)
  t.equal(arena.take(SIZE), a)
})

t.test('an idle slot is recycled before a fill takes it again; one that cannot be is never written again', async t => {
  const recycled: Buffer[] = []
  let refuse = false
  const arena = new ChunkArena(SIZE, 4, Buffer.allocUnsafeSlow, buf => { recycled.push(buf); return !refuse })
  const a = arena.take(SIZE)
  t.same(recycled, [], 'new memory needs no recycling')
  dropChunk(a)
  t.equal(arena.take(SIZE), a, 'the idle slot is reused')
  t.equal(recycled.length, 1, 'after being recycled')
  t.equal(recycled[0], a)
  dropChunk(a)
  refuse = true
  const b = arena.take(SIZE)
  t.not(b, a, 'a slot whose recycling failed is not given to the fill')
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 0, allocated: 2, reserved: 0, reused: 1, prefaulted: 0, prefaultPending: 0 }, 'nor counted idle or reused')
})

t.test('reserved slots: created at start, handed out after idle ones and before any allocation, dropped by a resize', async t => {
  const made: Buffer[] = []
  const arena = new ChunkArena(SIZE, 4, n => { const b = Buffer.alloc(n); made.push(b); return b })
  arena.reserve(3)
  t.equal(made.length, 3, 'created at once')
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 3, allocated: 0, reserved: 0, reused: 0, prefaulted: 0, prefaultPending: 0 })
  arena.reserve(2)
  t.equal(made.length, 3, 'a smaller count creates nothing more')
  t.throws(() => holdChunk(made[2]!), /held while idle/, 'a reserved slot nothing was given is not held')

  const a = arena.take(SIZE)
  t.ok(made.includes(a), 'the first fill takes a reserved slot')
  t.equal(made.length, 3, 'nothing allocated')
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 2, allocated: 0, reserved: 1, reused: 0, prefaulted: 0, prefaultPending: 0 }, 'counted as a reserved slot handed out, not an allocation')
  dropChunk(a)
  t.equal(arena.take(SIZE), a, 'an idle slot (its pages faulted in) goes before a reserved one')
  const b = arena.take(SIZE)
  const c = arena.take(SIZE)
  t.ok(made.includes(b) && made.includes(c) && b !== c && b !== a, 'the other two reserved slots, one each')
  t.equal(made.length, 3, 'still nothing allocated')
  const d = arena.take(SIZE)
  t.equal(made.length, 4, 'none reserved left: allocated')
  t.equal(made.at(-1), d)
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 0, allocated: 1, reserved: 3, reused: 1, prefaulted: 0, prefaultPending: 0 })
  t.equal(arena.take(SIZE / 2).length, SIZE / 2, 'another size is never a slot')

  const other = new ChunkArena(SIZE, 4, n => { const b = Buffer.alloc(n); made.push(b); return b })
  other.reserve(2)
  other.resize(2 * SIZE)
  t.equal(other.stats().reservedLeft, 0, 'a resize drops the reserved slots of the old size')
  const n = made.length
  t.equal(other.take(2 * SIZE).length, 2 * SIZE)
  t.equal(made.length, n + 1, 'and the next take allocates the new size')
})

t.test('reserved slots of the splice addon\'s memory are address space, not resident memory, until written', { skip: ZERO_COPY_AVAILABLE ? false : `no splice addon: ${ZERO_COPY_MISSING}` }, async t => {
  const CHUNK = 64 * 1024 * 1024
  const arena = new ChunkArena(CHUNK, 4, zeroCopyChunk)
  const rss = () => process.memoryUsage().rss
  const before = rss()
  arena.reserve(8)
  const mid = rss()
  t.ok(mid - before < 32 * 1024 * 1024, `8 slots of 64 MiB reserved: RSS grew ${((mid - before) / 2 ** 20).toFixed(1)} MiB`)
  const a = arena.take(CHUNK)
  t.equal(arena.stats().reserved, 1, 'the fill took a reserved slot')
  a.fill(7)
  t.ok(rss() - mid >= CHUNK / 2, 'the slot a fill wrote is resident')
})

t.test('prefault: reserved slots faulted in one at a time, in the order fills take them, skipping one taken, stopped by a resize or the signal', async t => {
  const arena = new ChunkArena(SIZE, 4)
  arena.reserve(5)
  const faulted: Buffer[] = []
  let release: (() => void) | undefined
  const populate = (b: Buffer) => { faulted.push(b); return new Promise<boolean>(resolve => { release = () => resolve(true) }) }
  const ac = new AbortController()
  const done = arena.prefault(3 * SIZE + 1, populate, ac.signal)
  await Promise.resolve()
  t.equal(faulted.length, 1, 'one slot at a time')
  t.equal(arena.stats().prefaultPending, 2 * SIZE, 'three slots asked for (the bytes round down), one under way')
  const first = arena.take(SIZE)
  t.equal(first, faulted[0], 'the first slot faulted in is the first a fill takes')
  const second = arena.take(SIZE)
  release!()
  await new Promise(setImmediate)
  t.equal(faulted.length, 2, 'the next one once the first is done')
  t.not(faulted[1], second, 'a slot a fill took meanwhile is skipped')
  t.equal(arena.take(SIZE), faulted[1], 'the third a fill takes was faulted in second')
  release!()
  t.equal(await done, 2 * SIZE, 'one taken: two faulted in')
  t.equal(arena.stats().prefaulted, 2 * SIZE)
  t.equal(arena.stats().prefaultPending, 0, 'nothing pending once done')

  // a resize stops it within the slot in progress: populate is given a signal that the resize aborts
  const other = new ChunkArena(SIZE, 4)
  other.reserve(4)
  let seen: AbortSignal | undefined
  let finish: ((v: boolean) => void) | undefined
  const p = other.prefault(4 * SIZE, (_b, signal) => { seen = signal; return new Promise<boolean>(resolve => { finish = resolve }) }, ac.signal)
  await Promise.resolve()
  t.equal(seen?.aborted, false)
  other.resize(2 * SIZE)
  t.equal(seen?.aborted, true, 'the resize aborts the slot in progress')
  finish!(false)
  t.equal(await p, 0, 'and nothing more is faulted in')
  t.equal(other.stats().prefaultPending, 0)

  // the caller's signal, mid-run
  const mid = new ChunkArena(SIZE, 4)
  mid.reserve(4)
  const stopAll = new AbortController()
  let calls = 0
  const q = mid.prefault(4 * SIZE, (_b, signal) => { calls++; stopAll.abort(); return Promise.resolve(signal?.aborted !== true) }, stopAll.signal)
  t.equal(await q, 0, 'aborted during the first slot: it does not count')
  t.equal(calls, 1, 'and no other slot is started')

  const third = new ChunkArena(SIZE, 4)
  third.reserve(4)
  ac.abort()
  t.equal(await third.prefault(4 * SIZE, () => t.fail('aborted: nothing faulted') as never, ac.signal), 0, 'an aborted signal: nothing')
  t.equal(await third.prefault(4 * SIZE, () => false, new AbortController().signal), 0, 'memory populate cannot take: nothing, no error')
  t.equal(await third.prefault(SIZE - 1, () => t.fail('less than a slot') as never, new AbortController().signal), 0, 'less than a slot: nothing')
  t.equal(third.stats().prefaultPending, 0)
})

t.test('populate keeps every byte of the splice addon\'s memory; a prefaulted slot takes (almost) no fault when a fill writes it', { skip: ZERO_COPY_AVAILABLE ? false : `no splice addon: ${ZERO_COPY_MISSING}` }, async t => {
  const CHUNK = 64 * 1024 * 1024
  const arena = new ChunkArena(CHUNK, 4, zeroCopyChunk)
  arena.reserve(3)
  // bytes written before and while populate touches the pages survive it
  const a = arena.take(CHUNK)
  for (let off = 0; off < CHUNK; off += 1024 * 1024) a[off] = (off >> 20) % 251 + 1
  const faulting = populate(a)
  t.not(faulting, false)
  a[CHUNK - 1] = 7
  t.equal(await faulting, true)
  let bad = 0
  for (let off = 0; off < CHUNK; off += 1024 * 1024) if (a[off] !== (off >> 20) % 251 + 1) bad++
  t.equal(bad, 0, 'every byte written before populate is intact')
  t.equal(a[CHUNK - 1], 7, 'and the one written meanwhile')
  t.equal(a[4096 + 1], 0, 'untouched bytes stay zero')

  t.equal(await arena.prefault(CHUNK, populate, new AbortController().signal), CHUNK)
  const pre = arena.take(CHUNK)
  const cold = arena.take(CHUNK)
  const faults = (b: Buffer) => {
    const before = process.resourceUsage().minorPageFault
    b.fill(3)
    return process.resourceUsage().minorPageFault - before
  }
  const untouched = faults(cold)
  const prefaulted = faults(pre)
  t.ok(untouched >= 16, `writing an untouched slot faults its pages in: ${untouched} faults`)
  t.ok(prefaulted * 4 <= untouched, `writing a prefaulted slot: ${prefaulted} faults`)
})

t.test('a reserve the allocator refuses midway keeps none and throws its error; fills then create their own', async t => {
  let calls = 0
  const arena = new ChunkArena(SIZE, 4, n => {
    if (++calls === 3) throw Object.assign(new Error('alloc: mmap failed'), { code: 'ERR_MEMORY_ALLOCATION_FAILED' })
    return Buffer.alloc(n)
  })
  t.throws(() => arena.reserve(5), { code: 'ERR_MEMORY_ALLOCATION_FAILED' })
  t.equal(arena.stats().reservedLeft, 0, 'the two made before are not kept')
  arena.take(SIZE)
  t.same(arena.stats(), { idleBytes: 0, reservedLeft: 0, allocated: 1, reserved: 0, reused: 0, prefaulted: 0, prefaultPending: 0 }, 'the next fill creates its own')
})

t.test('the RAM tier drops its hold on what it evicts, by an insert or by a smaller bound (a reload): the slot goes back to the arena', async t => {
  const arena = new ChunkArena(SIZE, 4)
  const ram = new RamTier(createPolicy('lru', 2 * SIZE), () => {})
  const [a, b, c] = [arena.take(SIZE), arena.take(SIZE), arena.take(SIZE)]
  for (const [k, buf] of [['a', a], ['b', b]] as const) {
    t.ok(ram.insert(k, buf))
    dropChunk(buf) // the fill committed it: the tier's is the only hold
  }
  t.ok(ram.insert('c', c))
  dropChunk(c)
  t.equal(arena.stats().idleBytes, SIZE, 'an insert evicted a: idle')
  t.equal(ram.resize(SIZE), 1, 'a reload halves the tier: b goes')
  t.equal(arena.stats().idleBytes, 2 * SIZE, 'and its slot is idle too')
  t.ok(ram.has('c'))
})
