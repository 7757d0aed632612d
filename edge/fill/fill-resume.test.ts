import t from 'tap'
import { UpstreamError } from '../../lib/errors.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { UpstreamVersionError } from './upstream.js'
import { readAll, reset, setup, startedWithSeek } from '../../test/helpers/scripted-fill.js'

/**
 * A fill's requests that the upstream breaks off are asked again from the last
 * verified byte, a bounded number of times, within the fill's deadline; what
 * another request cannot fix fails the fill at once (issue 14, item 2).
 */
const B = BLOCK_SIZE

t.test('a reset mid-body is resumed from the end of the last verified block, byte-exact', async t => {
  const s = setup(3 * B, { blocks: true, retries: 2 })
  s.fill.start(0)
  await s.fetched(1)
  s.list.send()
  const r = readAll(s.fill, 0, 3 * B)
  s.feed(s.pipes[0]!, 0, B + 500)
  s.pipes[0]!.push(reset())
  await s.fetched(2)
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [B, 3 * B], 'the rest, from the block the reset cut')
  t.same(s.retries, [{ reason: 'cut', at: B }])
  s.feed(s.pipes[1]!, B, 3 * B)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await r).equals(s.bytes), 'the reader saw one byte-exact chunk')
})

t.test('without a block list, a short body is resumed from the last byte that arrived', async t => {
  const s = setup(5000, { retries: 1 })
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, 1234)
  s.pipes[0]!.push(null)
  await s.fetched(2)
  t.same([s.pipes[1]!.from, s.pipes[1]!.to], [1234, 5000])
  s.feed(s.pipes[1]!, 1234, 5000)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
})

t.test('a 404, another version or a refused request is not asked again', async t => {
  const errors = [
    new UpstreamError('upstream answered 404 for chunk m/0'),
    new UpstreamVersionError('chunk m/0', 'etag "x", manifest says "y"'),
    new UpstreamError('upstream answered 401 for chunk m/0'),
  ]
  for (const err of errors) {
    const s = setup(5000, { retries: 3 })
    s.fill.start(0)
    await s.fetched(1)
    s.feed(s.pipes[0]!, 0, 100)
    s.pipes[0]!.push(err)
    await t.rejects(s.fill.done, { code: err.code })
    t.equal(s.pipes.length, 1, err.message)
  }
})

t.test('resumption is bounded: after `retries` the fill fails with the last error', async t => {
  const s = setup(5000, { retries: 2 })
  s.fill.start(0)
  const r = readAll(s.fill, 0, 5000)
  for (let i = 1; i <= 3; i++) {
    await s.fetched(i)
    s.feed(s.pipes[i - 1]!, s.pipes[i - 1]!.from, s.pipes[i - 1]!.from + 100)
    s.pipes[i - 1]!.push(reset())
  }
  await t.rejects(r, { code: 'CDN_ERR_UPSTREAM', message: /UND_ERR_SOCKET/ })
  t.equal(s.pipes.length, 3)
  t.same(s.retries.map(x => x.at), [100, 200])
})

t.test('the budget is for failures in a row: a request that brought a block more before its cut starts the count again', async t => {
  const s = setup(6 * B, { retries: 1 })
  s.fill.start(0)
  const r = readAll(s.fill, 0, 6 * B)
  // five cuts, each after one more block: more than `retries` in all, never two in a row without progress
  for (let i = 1; i <= 5; i++) {
    await s.fetched(i)
    const p = s.pipes[i - 1]!
    s.feed(p, p.from, p.from + B)
    p.push(reset())
  }
  await s.fetched(6)
  s.feed(s.pipes[5]!, 5 * B, 6 * B)
  s.pipes[5]!.push(null)
  t.ok((await r).equals(s.bytes), 'the reader got every byte')
  t.ok((await s.fill.done).equals(s.bytes))
  t.same(s.retries.map(x => x.at), [B, 2 * B, 3 * B, 4 * B, 5 * B])
})

t.test('progress short of a block does not refill the budget', async t => {
  const s = setup(6 * B, { retries: 2 })
  s.fill.start(0)
  const r = readAll(s.fill, 0, 6 * B)
  for (let i = 1; i <= 3; i++) {
    await s.fetched(i)
    const p = s.pipes[i - 1]!
    s.feed(p, p.from, p.from + B - 1)
    p.push(reset())
  }
  await t.rejects(r, { code: 'CDN_ERR_UPSTREAM' })
  t.equal(s.pipes.length, 3, 'two resumptions, then the fill fails')
})

t.test('no resumption waits past the fill\'s deadline', async t => {
  const s = setup(5000, { retries: 3, retryBackoffMs: 60_000 })
  s.fill.deadline = performance.now() + 10_000
  s.fill.start(0)
  await s.fetched(1)
  s.pipes[0]!.push(reset())
  await t.rejects(s.fill.done, { code: 'CDN_ERR_UPSTREAM' })
  t.equal(s.pipes.length, 1)
  t.same(s.retries, [])
})

t.test('the segments of a split fill resume on their own', async t => {
  const s = setup(10000, { splitBytes: 1000, retries: 1 })
  const deep = (await startedWithSeek(s, 500, 8000)).seek
  s.feed(s.pipes[1]!, 8000, 9000)
  s.pipes[1]!.push(reset())
  await s.fetched(3)
  t.same([s.pipes[2]!.from, s.pipes[2]!.to], [9000, 10000], 'the deep segment asks for its own rest')
  t.notOk(s.pipes[0]!.destroyed, 'the first segment goes on')
  s.feed(s.pipes[2]!, 9000, 10000)
  s.pipes[2]!.push(null)
  s.feed(s.pipes[0]!, 500, 8000)
  s.pipes[0]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
  t.ok((await deep).equals(s.bytes.subarray(8000)))
})

t.test('an idle timeout is asked again too', async t => {
  const s = setup(5000, { retries: 1 })
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, 2000)
  s.pipes[0]!.push(Object.assign(new Error('Body Timeout Error'), { code: 'UND_ERR_BODY_TIMEOUT' }))
  await s.fetched(2)
  t.same(s.retries, [{ reason: 'timeout', at: 2000 }])
  s.feed(s.pipes[1]!, 2000, 5000)
  s.pipes[1]!.push(null)
  t.ok((await s.fill.done).equals(s.bytes))
})
