import t from 'tap'
import { UpstreamError } from '../../lib/errors.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { readAll, reset, setup, startedWithSeek, ticksUntil } from '../../test/helpers/scripted-fill.js'

/** The Fill against a scripted upstream (test/helpers/scripted-fill.ts): fill order, release and verification. */
t.test('bytes reach readers as they arrive; the chunk is verified when the last lands', async t => {
  const s = setup(10000)
  s.fill.start(0)
  await s.fetched(1)
  const reader = readAll(s.fill, 0, 10000)
  s.feed(s.pipes[0]!, 0, 100)
  await s.fill.waitFor(0)
  t.equal(s.fill.availableFrom(0), 100, 'the first 100 bytes are readable before the rest exists')
  t.notOk(s.fill.verified)
  s.feed(s.pipes[0]!, 100, 10000)
  s.pipes[0]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await reader).equals(s.bytes))
})

t.test('a reader far ahead gets its own ranged fetch; every byte is fetched once', async t => {
  const s = setup(10000, { splitBytes: 1000 })
  const deep = (await startedWithSeek(s, 500, 8000)).seek
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [8000, 10000], 'the seek starts its own request at its offset')
  s.feed(s.pipes[1]!, 8000, 10000)
  s.pipes[1]!.push(null)
  await ticksUntil(() => s.fill.availableFrom(8000) === 9999)
  t.equal(s.fill.availableFrom(8000), 9999, 'the seek is served before the first segment gets there, all but the last byte, which waits for the digest')
  s.feed(s.pipes[0]!, 500, 9000) // more than the first segment still wants: it stops at 8000
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await deep).equals(s.bytes.subarray(8000)))
  t.equal(s.received(), 9000 - 0 + 2000, 'bytes received: what was pushed, the overshoot of the cut request included')
  t.ok(s.pipes[0]!.destroyed, 'the first request was cut where the second one began')
})

t.test('a split never starts below what the running request may already be reading into (its claim)', async t => {
  const s = setup(10000, { splitBytes: 1000 })
  s.fill.start(0)
  await s.fetched(1)
  const d = s.dests[0]!
  t.equal(d.buf, s.fill.buf, 'the fill offers its own buffer')
  t.equal(d.end(), 10000)
  s.feed(s.pipes[0]!, 0, 500)
  await ticksUntil(() => s.received() === 500)
  d.claim(8500) // a zero-copy source named [500, 8500) for its next read
  const deep = readAll(s.fill, 8000, 10000)
  await s.fetched(2)
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [8500, 10000], 'the seek\'s request starts where the claim ends, not at 8000')
  t.equal(d.end(), 8500, 'and the running request now ends there')
  s.feed(s.pipes[1]!, 8500, 10000)
  s.pipes[1]!.push(null)
  s.feed(s.pipes[0]!, 500, 8500)
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await deep).equals(s.bytes.subarray(8000)))
})

t.test('a fill started deep fetches the rest afterwards, wrapping around', async t => {
  const s = setup(10000)
  s.fill.start(6000)
  await s.fetched(1)
  t.same([s.pipes[0]!.from, s.pipes[0]!.to], [6000, 10000])
  s.feed(s.pipes[0]!, 6000, 10000)
  s.pipes[0]!.push(null)
  await s.fetched(2)
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [0, 6000], 'then the gap before it')
  s.feed(s.pipes[1]!, 0, 6000)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
})

t.test('a digest mismatch fails the fill for every reader and never resolves done', async t => {
  const s = setup(5000, { corrupt: true })
  s.fill.start(0)
  await s.fetched(1)
  const r1 = readAll(s.fill, 0, 5000)
  const r2 = readAll(s.fill, 4000, 5000)
  s.feed(s.pipes[0]!, 0, 5000)
  s.pipes[0]!.push(null)
  await t.rejects(s.fill.done, { code: 'CDN_ERR_UPSTREAM_DIGEST', statusCode: 502 })
  await t.rejects(r1, { code: 'CDN_ERR_UPSTREAM_DIGEST' })
  await t.rejects(r2, { code: 'CDN_ERR_UPSTREAM_DIGEST' })
  t.notOk(s.fill.verified)
})

t.test('with no retries left, an upstream error mid-body reaches waiters as a 502; a short body too', async t => {
  const s = setup(5000)
  s.fill.start(0)
  await s.fetched(1)
  const r = readAll(s.fill, 0, 5000)
  s.feed(s.pipes[0]!, 0, 1000)
  s.pipes[0]!.push(reset())
  await t.rejects(r, { code: 'CDN_ERR_UPSTREAM' })
  await t.rejects(s.fill.done, { code: 'CDN_ERR_UPSTREAM' })

  const short = setup(5000)
  short.fill.start(0)
  await short.fetched(1)
  short.feed(short.pipes[0]!, 0, 4000)
  short.pipes[0]!.push(null)
  await t.rejects(short.fill.done, { statusCode: 502, message: /ended .* at byte 4000/ })
})

t.test('fail() from outside (the coalescer\'s deadline) aborts the requests and wakes readers', async t => {
  const s = setup(5000)
  s.fill.start(0)
  await s.fetched(1)
  const r = readAll(s.fill, 0, 5000)
  s.fill.fail(new UpstreamError('deadline'))
  await t.rejects(r, { message: 'deadline' })
  t.ok(s.fill.signal.aborted)
})

t.test('no upstream request and no buffer before start()', async t => {
  const s = setup(5000)
  const r = s.fill.waitFor(100)
  await new Promise(r => setImmediate(r))
  t.equal(s.pipes.length, 0)
  t.equal(s.fill.buf, undefined)
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, 5000)
  s.pipes[0]!.push(null)
  await r
  await s.fill.done
})

const B = BLOCK_SIZE

t.test('with a block list, a read at the chunk\'s end starts at its block and completes before the rest of the chunk arrives', async t => {
  const size = 4 * B + 1000
  const at = size - 100
  const s = setup(size, { blocks: true })
  s.fill.start(at)
  await s.fetched(1)
  t.same([s.pipes[0]!.from, s.pipes[0]!.to], [4 * B, size], 'the request starts at the boundary of the block the read falls in')
  t.equal(s.list.asked(), 1, 'the block list is asked for alongside')
  const tail = readAll(s.fill, at, size)
  s.feed(s.pipes[0]!, 4 * B, size)
  s.pipes[0]!.push(null)
  await s.fetched(2)
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [0, 4 * B], 'then the gap before it')
  t.equal(s.fill.availableFrom(at), at, 'nothing is released before the block list arrives')
  s.list.send()
  t.ok((await tail).equals(s.bytes.subarray(at)), 'the last 100 bytes, the chunk\'s last byte included, are served')
  t.notOk(s.fill.verified, 'while the rest of the chunk has not arrived')
  s.feed(s.pipes[1]!, 0, 4 * B)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes), 'the whole chunk verifies afterwards')
})

t.test('with a block list, bytes are released a whole verified block at a time', async t => {
  const s = setup(3 * B, { blocks: true })
  s.fill.start(0)
  await s.fetched(1)
  s.list.send()
  s.feed(s.pipes[0]!, 0, B - 1)
  await ticksUntil(() => s.received() === B - 1)
  t.equal(s.fill.availableFrom(0), 0, 'a block one byte short is held')
  s.feed(s.pipes[0]!, B - 1, B + 10)
  await ticksUntil(() => s.received() === B + 10)
  t.equal(s.fill.availableFrom(0), B, 'released once whole, up to its end')
  s.feed(s.pipes[0]!, B + 10, 3 * B)
  s.pipes[0]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
})

t.test('a block that fails its CRC fails the fill; none of it is released, and it is not asked again', async t => {
  const s = setup(2 * B, { blocks: true, corrupt: true, retries: 3 })
  s.fill.start(0)
  await s.fetched(1)
  s.list.send()
  const r = readAll(s.fill, 0, 2 * B)
  s.feed(s.pipes[0]!, 0, B)
  await t.rejects(r, { code: 'CDN_ERR_UPSTREAM_DIGEST', message: /block 0/ })
  await t.rejects(s.fill.done, { code: 'CDN_ERR_UPSTREAM_DIGEST' })
  t.equal(s.fill.availableFrom(0), 0)
  t.equal(s.pipes.length, 1)
})

t.test('without its block list, a fill keeps the whole-chunk rule: the last byte waits for the digest', async t => {
  const size = 2 * B + 10
  const s = setup(size, { blocks: true })
  s.fill.start(size - 5)
  await s.fetched(1)
  s.list.refuse(new UpstreamError('upstream answered 404 for the block list'))
  s.feed(s.pipes[0]!, 2 * B, size)
  s.pipes[0]!.push(null)
  await s.fetched(2)
  await ticksUntil(() => s.fill.availableFrom(size - 5) > size - 5)
  t.equal(s.fill.availableFrom(size - 5), size - 1, 'all but the last byte')
  s.feed(s.pipes[1]!, 0, 2 * B)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
  t.equal(s.fill.availableFrom(size - 5), size)
})

t.test('with a block list, the blocks are the check: no whole-chunk digest unless edge.fill.verifyWholeChunks asks for it', async t => {
  const run = async (verifyWholeChunks: boolean | undefined) => {
    const s = setup(3 * B + 10, { blocks: true, otherDigest: true, ...(verifyWholeChunks === undefined ? {} : { verifyWholeChunks }) })
    s.fill.start(0)
    await s.fetched(1)
    s.list.send()
    s.feed(s.pipes[0]!, 0, 3 * B + 10)
    s.pipes[0]!.push(null)
    return s
  }
  const off = await run(false)
  t.ok((await off.fill.done).equals(off.bytes), 'off: every block passed the list, so the chunk is verified')
  t.ok(off.fill.crcs?.equals(off.crcs), 'and the list it passed goes on with it (the disk tier keeps it)')
  const on = await run(true)
  await t.rejects(on.fill.done, { code: 'CDN_ERR_UPSTREAM_DIGEST', message: /sha256/ }, 'on: the digest catches what the CRCs could not')
  const unset = await run(undefined)
  await t.rejects(unset.fill.done, { code: 'CDN_ERR_UPSTREAM_DIGEST' }, 'unset: on')
})

t.test('without a block list the digest decides whatever verifyWholeChunks says', async t => {
  const s = setup(5000, { corrupt: true, verifyWholeChunks: false })
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, 5000)
  s.pipes[0]!.push(null)
  await t.rejects(s.fill.done, { code: 'CDN_ERR_UPSTREAM_DIGEST' })
  t.equal(s.fill.crcs, undefined, 'and no block list goes on')
})

t.test('a reader that left stops asking: no split is started later for its offset', async t => {
  const s = setup(10000, { splitBytes: 1000, maxSegments: 2 })
  // a seek at 5000 takes the second segment; a reader at 8000 would split that one, but no segment is free
  const { seek } = await startedWithSeek(s, 100, 5000)
  let gone = false
  const left = s.fill.waitFor(8000, () => gone)
  left.catch(() => {})
  await ticksUntil(() => s.received() === 100)
  // its client leaves; the first segment ends (a segment is free again), then the second one moves on, waking the waiters
  gone = true
  s.feed(s.pipes[0]!, 100, 5000)
  s.pipes[0]!.push(null)
  await ticksUntil(() => s.fill.availableFrom(0) >= 5000)
  for (let i = 0; i < 10; i++) await new Promise(r => setImmediate(r))
  s.feed(s.pipes[1]!, 5000, 5100)
  await ticksUntil(() => s.fill.availableFrom(5000) >= 5100)
  await ticksUntil(() => s.pipes.length > 2)
  t.equal(s.pipes.length, 2, 'no request for the offset of a reader who left')
  const ended = await Promise.race([left.then(() => 'resolved', (e: Error) => e.name), new Promise(r => setTimeout(r, 1000, 'still waiting').unref())])
  t.equal(ended, 'ClientClosedError', 'its wait ended as its client\'s')
  s.feed(s.pipes[1]!, 5100, 10000)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await seek).equals(s.bytes.subarray(5000)))
})
