import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { fresh } from '../helpers/fresh.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'
import type { RunningEdge } from '../../edge/main.js'

/**
 * edge.serveThreads with the hot set on disk (issue 16): a thread reads disk
 * hits itself, verified, the main thread still the only writer; and one
 * scrape of /metrics sees every thread's requests. Which thread accepts a
 * connection is the kernel's choice, so each check runs over fresh
 * connections and asserts on what every thread must do; the threads' own
 * counters show that a thread did it.
 */
const CS = 256 * 1024
const THREADS = { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0, 'edge.ramBytes': 0 }

async function warmToDisk(edge: RunningEdge, url: string, body: Buffer, chunks: number): Promise<void> {
  const r = await get(url)
  if (r.status !== 200 || !r.body.equals(body)) throw new Error(`warming ${url}: ${r.status}, ${r.body.length} bytes`)
  await until(() => edge.cache.disk.stats().entries === chunks && edge.cache.disk.pendingWrites === 0, 'every chunk on disk')
}

const served = (edgeUrl: string) => metric(edgeUrl, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' })

t.test('with every hit on disk, a serve thread answers disk hits itself, byte-exact, each counted once as a disk hit', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(4 * CS + 1000, 'disk-threads')
  await up.addTitle('dt', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, THREADS)
  const url = `${edge.url}/v1/content/dt`
  await warmToDisk(edge, url, body, 5)
  const upstreamBefore = up.requests('dt')
  const hitsBefore = await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' })
  const bytesBefore = await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'disk_hit' })

  let n = 0
  let bytes = 0
  // rounds of ranges inside one chunk (a thread's to answer), until a thread has answered some
  for (let round = 0; round < 20 && await served(edge.url) === 0; round++) {
    const ranges: [number, number][] = []
    for (let i = 0; i < 30; i++) {
      const s = ((round * 30 + i) * 7919 * 31) % (body.length - 70_000)
      ranges.push(i % 3 === 0 ? [s, s] : [s, Math.min(s + 65_000, Math.floor(s / CS) * CS + CS - 1)])
    }
    const got = await Promise.all(ranges.map(([s, e]) => fresh(url, { range: `bytes=${s}-${e}` })))
    got.forEach((r, i) => {
      const [s, e] = ranges[i]!
      if (r.status !== 206 || !r.body.equals(body.subarray(s, e + 1))) t.fail(`bytes=${s}-${e}: ${r.status}, ${r.body.length} bytes`)
      if (r.headers['content-range'] !== `bytes ${s}-${e}/${body.length}`) t.fail(`bytes=${s}-${e}: content-range ${r.headers['content-range']}`)
      bytes += e - s + 1
    })
    n += ranges.length
    await until(async () => await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }) === hitsBefore + n, `${n} disk hits counted`)
  }
  const byThreads = await served(edge.url)
  t.ok(byThreads > 0, `a thread answered ${byThreads} of ${n} disk hits (there is no RAM tier: every one it served came from disk)`)
  t.equal(up.requests('dt'), upstreamBefore, 'no upstream request for a hit')
  t.equal(await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'disk_hit' }), bytesBefore + bytes, 'every byte counted once, as a disk hit')
  t.equal(await metric(edge.url, 'reelcdn_edge_file_bytes_served_total', { file: 'title', result: 'disk_hit' }), bytesBefore + bytes)
  t.equal(await metric(edge.url, 'reelcdn_edge_ttfb_seconds_count', { result: 'disk_hit' }), hitsBefore + n, 'a first-byte time for each')
  t.equal(await metric(edge.url, 'reelcdn_edge_ttfb_seconds_count', { result: 'ram_hit' }), 0)
})

t.test('a chunk corrupted on disk is refused by whichever thread reads it: the player gets the right bytes, the chunk is dropped once and filled again', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const chunks = 12
  const body = titleBytes(chunks * CS, 'corrupt')
  await up.addTitle('cr', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, THREADS)
  const url = `${edge.url}/v1/content/cr`
  await warmToDisk(edge, url, body, chunks)
  const corrupt = (by?: string) => metric(edge.url, 'reelcdn_edge_corrupt_chunks_total', by === undefined ? {} : { found_by: by })
  // one chunk at a time, until a thread was the one to read a damaged one (the main thread reads the others)
  for (let i = 0; i < chunks && await corrupt('thread') === 0; i++) {
    const key = edge.cache.disk.index.keysOf('cr').find(k => k.startsWith(`cr/${i}/`))!
    const file = edge.cache.disk.path({ contentId: 'cr', index: i, sha256: key.split('/')[2]! })
    const bytes = readFileSync(file)
    bytes[70_000]! ^= 0xff // block 1, in place
    writeFileSync(file, bytes)
    const fetched = up.requests('cr', i)
    const s = i * CS + 60_000
    const r = await fresh(url, { range: `bytes=${s}-${s + 19_999}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(body.subarray(s, s + 20_000)), `chunk ${i}: the right bytes, never the damaged ones`)
    await until(async () => await corrupt() === i + 1, `chunk ${i} found corrupt once`)
    t.ok(up.requests('cr', i) > fetched, `chunk ${i} filled again from upstream`)
    await until(() => edge.fills.size === 0 && edge.cache.disk.pendingWrites === 0, 'the refill on disk')
    const again = await fresh(url, { range: `bytes=${s}-${s + 19_999}` })
    t.ok(again.body.equals(body.subarray(s, s + 20_000)), `chunk ${i}: refilled, right bytes`)
  }
  t.equal(await corrupt('thread'), 1, 'a thread refused a damaged chunk (its request went to the main thread, which filled the chunk again)')
})

t.test('one scrape sees every thread\'s requests: answers in flight, blocked on their players, are in the in-flight gauge', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const BIG = 24 * 1024 * 1024 // more than the loopback's socket buffers take from a player that reads nothing
  const body = titleBytes(BIG, 'inflight')
  await up.addTitle('fl', body, { chunkSize: BIG })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0, 'edge.sendStallTimeoutMs': 60_000 })
  const url = `${edge.url}/v1/content/fl`
  await get(url)
  await until(() => edge.cache.ram.stats().entries === 1, 'the chunk in RAM')
  const port = Number(new URL(edge.url).port)
  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  const stuck = 8
  for (let round = 0; round < 10; round++) {
    const before = await served(edge.url)
    for (let i = 0; i < stuck; i++) {
      const s = connect(port, '127.0.0.1', () => s.write(`GET /v1/content/fl HTTP/1.1\r\nHost: x\r\n\r\n`))
      s.pause() // reads nothing: every answer stays in flight
      sockets.push(s)
    }
    // every one of them, wherever it landed, plus this scrape (the main thread's, or relayed to it)
    await until(async () => await metric(edge.url, 'reelcdn_http_requests_in_flight') === sockets.length + 1, `${sockets.length} answers in flight and the scrape`)
    await until(async () => await metric(edge.url, 'reelcdn_edge_responses_blocked') >= sockets.length - 2, 'blocked responses, counted wherever they are')
    if (await served(edge.url) > before) break
  }
  t.ok(await served(edge.url) > 0, 'a thread answered some of them')
  for (const s of sockets) s.destroy()
  await until(async () => await metric(edge.url, 'reelcdn_http_requests_in_flight') === 1, 'only the scrape in flight once the players left')
  // and each answer, wherever it was, is counted once when it ends (the warm-up read too)
  await until(async () => await metric(edge.url, 'reelcdn_http_requests_total', { route: '/v1/content/:id', method: 'GET' }) === sockets.length + 1,
    'every answer counted')
  t.equal(await metric(edge.url, 'reelcdn_http_request_duration_seconds_count', { route: '/v1/content/:id' }), sockets.length + 1, 'and timed')
})
