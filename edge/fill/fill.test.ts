import t from 'tap'
import { createHash } from 'node:crypto'
import { UpstreamError } from '../../lib/errors.js'
import { Fill, type ChunkFetch } from './fill.js'
import type { ChunkRef } from '../title.js'

/**
 * The Fill against a scripted upstream: each fetch is a stream the test pushes
 * pieces into, so every interleaving is chosen by the test, not by timing.
 */
class Pipe {
  private queue: (Buffer | Error | null)[] = []
  private wake: (() => void) | null = null
  destroyed = false
  constructor(readonly from: number, readonly to: number) {}
  push(x: Buffer | Error | null) { this.queue.push(x); this.wake?.() }
  destroy() { this.destroyed = true; this.wake?.() }
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        while (this.queue.length === 0 && !this.destroyed) await new Promise<void>(r => { this.wake = r })
        if (this.destroyed) return
        const x = this.queue.shift()!
        if (x === null) return
        if (x instanceof Error) throw x
        yield x
      }
    } finally { this.destroyed = true }
  }
}

function setup(size: number, opts = { splitBytes: 2 ** 30, maxSegments: 4 }, corrupt = false) {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 3) & 0xff
  const sha = createHash('sha256').update(bytes).digest('hex')
  const ref: ChunkRef = { key: `m/0/${sha}`, contentId: 'm', index: 0, sha256: sha, size }
  const pipes: Pipe[] = []
  let onFetch: (() => void) | null = null
  const fetch: ChunkFetch = async (_ref, from, to) => { const p = new Pipe(from, to); pipes.push(p); onFetch?.(); return p }
  const fetched = (n: number) => new Promise<void>(r => { if (pipes.length >= n) r(); else onFetch = () => { if (pipes.length >= n) r() } })
  /** pushes bytes [from, to) of the source (or corrupted) into a pipe */
  const feed = (p: Pipe, from: number, to: number) => {
    const b = Buffer.from(bytes.subarray(from, to))
    if (corrupt) b[0]! ^= 1
    p.push(b)
  }
  let received = 0
  const fill = new Fill(ref, fetch, opts, n => { received += n })
  return { bytes, ref, pipes, fetched, feed, fill, received: () => received }
}

/** Lets queued I/O callbacks run until `cond` holds (bounded): a barrier on state, not on time. */
async function ticksUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise(r => setImmediate(r))
}

async function readAll(fill: Fill, from: number, to: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let pos = from
  while (pos < to) {
    await fill.waitFor(pos)
    const end = Math.min(fill.availableFrom(pos), to)
    parts.push(Buffer.from(fill.buf.subarray(pos, end)))
    pos = end
  }
  return Buffer.concat(parts)
}

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
  const s = setup(10000, { splitBytes: 1000, maxSegments: 4 })
  s.fill.start(0)
  await s.fetched(1)
  s.feed(s.pipes[0]!, 0, 500)
  const deep = readAll(s.fill, 8000, 10000)
  await s.fetched(2)
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
  const s = setup(5000, undefined, true)
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

t.test('an upstream error mid-body reaches waiters as a 502; a short body too', async t => {
  const s = setup(5000)
  s.fill.start(0)
  await s.fetched(1)
  const r = readAll(s.fill, 0, 5000)
  s.feed(s.pipes[0]!, 0, 1000)
  s.pipes[0]!.push(new UpstreamError('socket reset'))
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
