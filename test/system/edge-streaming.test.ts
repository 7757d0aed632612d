import t from 'tap'
import { request } from 'undici'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { metric, startTestEdge, until } from '../helpers/edge.js'

/**
 * Streaming while filling: a miss sends its first byte as soon as the upstream
 * delivers it, and a seek deep into an uncached chunk starts after one upstream
 * round trip. Assertions compare events (how much the upstream had sent when
 * the player's first byte arrived); times are printed, never asserted.
 */
const MiB = 1024 ** 2

/** Reads a response's first body piece, noting when, and how much the upstream had sent by then. */
async function firstByte(url: string, headers: Record<string, string>, sent: () => number) {
  const t0 = performance.now()
  const res = await request(url, { headers })
  const it = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  const first = await it.next()
  const ttfbMs = performance.now() - t0
  const upstreamSent = sent()
  const parts: Buffer[] = [first.value as Buffer]
  const rest = (async () => {
    for (let n = await it.next(); !n.done; n = await it.next()) parts.push(n.value)
    return { body: Buffer.concat(parts), totalMs: performance.now() - t0 }
  })()
  return { status: res.statusCode, ttfbMs, upstreamSent, rest }
}

t.test('the first byte of a miss goes out while the upstream is still sending the chunk', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(2 * MiB, 'stream')
  await up.addTitle('s1', bytes, { chunkSize: 2 * MiB })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  up.hold('s1', 0, 64 * 1024)
  const r = await firstByte(`${edge.url}/v1/content/s1`, {}, () => up.sent('s1', 0))
  t.equal(r.status, 200)
  t.equal(r.upstreamSent, 64 * 1024, 'the player has bytes while the upstream is held at 64 KiB of 2 MiB')
  up.release('s1', 0)
  t.ok((await r.rest).body.equals(bytes))
})

t.test('with a throttled upstream, the first byte arrives long before the chunk completes', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(2 * MiB, 'throttled')
  await up.addTitle('s2', bytes, { chunkSize: 2 * MiB })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  up.throttle(8 * MiB)
  const r = await firstByte(`${edge.url}/v1/content/s2`, {}, () => up.sent('s2', 0))
  const { body, totalMs } = await r.rest
  t.ok(body.equals(bytes))
  t.ok(r.upstreamSent < bytes.length / 4, `the upstream had sent ${r.upstreamSent} of ${bytes.length} bytes at the player's first byte`)
  t.comment(`throttled miss (2 MiB chunk at 8 MiB/s): first byte after ${r.ttfbMs.toFixed(1)} ms, last after ${totalMs.toFixed(1)} ms`)
})

t.test('a seek deep into an uncached chunk starts promptly', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const CS = 8 * MiB
  const seek = 7 * MiB
  const bytes = titleBytes(CS, 'seek')
  for (const id of ['from-start', 'cold-seek', 'split-on', 'split-off']) await up.addTitle(id, bytes, { chunkSize: CS })
  up.throttle(16 * MiB) // each upstream response paced at 16 MiB/s: a whole chunk takes ~0.5 s
  const on = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  const off = await startTestEdge(t, up, { 'edge.readaheadChunks': 0, 'edge.fillSplitBytes': 2 ** 40 })
  const ranges = (id: string) => up.log.filter(r => r.contentId === id).map(r => r.range)

  const start = await firstByte(`${on.url}/v1/content/from-start`, { range: 'bytes=0-' }, () => up.sent('from-start', 0))
  await start.rest

  let cold = 0
  await t.test('no fill in flight: the fill itself starts at the seek point, then wraps around', async t => {
    const r = await firstByte(`${on.url}/v1/content/cold-seek`, { range: `bytes=${seek}-` }, () => up.sent('cold-seek', 0))
    t.ok(r.upstreamSent < CS - seek, `first byte after the upstream sent ${r.upstreamSent} bytes`)
    t.ok((await r.rest).body.equals(bytes.subarray(seek)))
    t.same(ranges('cold-seek'), [`bytes=${seek}-${CS - 1}`, `bytes=0-${seek - 1}`], 'each byte fetched once')
    cold = r.ttfbMs
  })

  // the common case: readahead (or another player) is filling the chunk from 0 when the seek lands
  const seekDuringFill = async (edgeUrl: string, id: string) => {
    const early = await firstByte(`${edgeUrl}/v1/content/${id}`, { range: 'bytes=0-' }, () => up.sent(id, 0))
    const r = await firstByte(`${edgeUrl}/v1/content/${id}`, { range: `bytes=${seek}-` }, () => up.sent(id, 0))
    const body = (await r.rest).body
    await early.rest
    return { r, body }
  }

  let split = 0
  await t.test('a fill from 0 in flight: the seek splits off its own ranged fetch', async t => {
    const { r, body } = await seekDuringFill(on.url, 'split-on')
    t.ok(r.upstreamSent < seek, `first byte after the upstream sent ${r.upstreamSent} bytes, less than the seek offset`)
    t.ok(body.equals(bytes.subarray(seek)))
    t.same(ranges('split-on'), [undefined, `bytes=${seek}-${CS - 1}`], 'the fill from 0, then a ranged fetch from the seek point')
    split = r.ttfbMs
  })

  let waited = 0
  await t.test('without the split, the seek waits for the fill to reach its offset', async t => {
    const { r, body } = await seekDuringFill(off.url, 'split-off')
    t.ok(r.upstreamSent >= seek, `first byte after the upstream sent ${r.upstreamSent} bytes`)
    t.ok(body.equals(bytes.subarray(seek)))
    t.same(ranges('split-off'), [undefined])
    waited = r.ttfbMs
  })
  t.ok(await metric(on.url, 'reelcdn_edge_upstream_bytes_total') < 3 * CS + MiB, 'no chunk fetched twice (beyond a cut request\'s overshoot)')

  up.throttle(0)
  const ram = await firstByte(`${on.url}/v1/content/split-on`, { range: `bytes=${seek}-` }, () => 0)
  await ram.rest
  t.comment(`TTFB, ${CS / MiB} MiB chunk, upstream paced at 16 MiB/s per response:`)
  t.comment(`  cold, from byte 0:                                 ${start.ttfbMs.toFixed(1)} ms`)
  t.comment(`  cold, seek to ${seek / MiB} MiB (fill starts at the seek):     ${cold.toFixed(1)} ms`)
  t.comment(`  seek to ${seek / MiB} MiB while filling from 0, split fetch:  ${split.toFixed(1)} ms`)
  t.comment(`  seek to ${seek / MiB} MiB while filling from 0, no split:     ${waited.toFixed(1)} ms`)
  t.comment(`  RAM hit, same seek:                                ${ram.ttfbMs.toFixed(1)} ms`)
})

t.test('reading chunk k fetches chunk k+1 ahead of the player', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const CS = 256 * 1024
  const bytes = titleBytes(3 * CS, 'readahead')
  await up.addTitle('ra', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.readaheadChunks': 1 })
  const url = `${edge.url}/v1/content/ra`
  await firstByte(url, { range: 'bytes=0-99' }, () => 0).then(r => r.rest)
  await up.requested(1, 'ra', 1)
  await until(() => edge.cache.ram.stats().entries === 2, 'chunk 1 to be cached by readahead')
  const r = await firstByte(url, { range: `bytes=${CS}-${CS + 99}` }, () => 0)
  t.ok((await r.rest).body.equals(bytes.subarray(CS, CS + 100)))
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }), 1, 'the player finds chunk 1 in RAM')
  t.equal(up.requests('ra', 1), 1)

  const none = await startTestEdge(t, up, { 'edge.readaheadChunks': 0 })
  await firstByte(`${none.url}/v1/content/ra`, { range: 'bytes=0-99' }, () => 0).then(r => r.rest)
  t.equal(await metric(none.url, 'reelcdn_edge_readahead_total', { result: 'started' }), 0, 'readahead 0: nothing fetched ahead')
})
