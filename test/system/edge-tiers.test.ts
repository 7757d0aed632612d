import t from 'tap'
import { readdirSync, readFileSync, statSync, existsSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { join } from 'node:path'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { startContentUpstream } from '../helpers/upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { freshDir, get, metric, settled, startTestEdge, until } from '../helpers/edge.js'

/**
 * The two tiers: bounded in bytes whatever the traffic, a disk hit promoted to
 * RAM, and each tier can be turned off. Only the promotion test needs the fake
 * upstream (it counts upstream requests); the others run on any ContentUpstream.
 */
const CS = 64 * 1024

/** Bytes under dir; the edge evicts while we walk, so a file gone since readdir counts 0. */
function bytesIn(dir: string): number {
  if (!existsSync(dir)) return 0
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true }))
    n += e.isDirectory() ? bytesIn(join(dir, e.name)) : statSync(join(dir, e.name), { throwIfNoEntry: false })?.size ?? 0
  return n
}

t.test('tier bounds hold under churn, and every byte served is right', async t => {
  const up = await startContentUpstream(t)
  const titles = [['a', 40 * CS + 123], ['b', 24 * CS]] as const
  const src = new Map<string, Buffer>()
  for (const [id, size] of titles) {
    src.set(id, titleBytes(size, id))
    await up.addTitle(id, src.get(id)!, { chunkSize: CS })
  }
  const RAM = 4 * CS
  const DISK = 16 * CS
  const dir = freshDir(t)
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': RAM, 'edge.diskBytes': DISK, 'edge.dataDir': dir, 'edge.maxFills': 4, 'edge.readaheadChunks': 1 })
  let seed = 3
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  let worst = { ram: 0, disk: 0, files: 0, tmp: 0 }
  const check = () => {
    const ram = edge.cache.ram.stats().bytes
    const disk = edge.cache.disk.stats().bytes
    const files = bytesIn(join(dir, 'chunks'))
    const tmp = bytesIn(join(dir, 'tmp'))
    worst = { ram: Math.max(worst.ram, ram), disk: Math.max(worst.disk, disk), files: Math.max(worst.files, files), tmp: Math.max(worst.tmp, tmp) }
  }
  let bad = 0
  const worker = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const [id, size] = titles[rnd(2)]!
      const s = rnd(size)
      const e = Math.min(size - 1, s + rnd(2 * CS))
      const r = await get(`${edge.url}/v1/content/${id}`, { range: `bytes=${s}-${e}` })
      if (r.status !== 206 || !r.body.equals(src.get(id)!.subarray(s, e + 1))) bad++
      check()
    }
  }
  await Promise.all(Array.from({ length: 8 }, () => worker(40)))
  await edge.cache.disk.idle()
  check()
  t.equal(bad, 0, '320 random ranges over 64 chunks, all byte-exact')
  t.ok(worst.ram <= RAM, `RAM tier peaked at ${worst.ram} of ${RAM} bytes`)
  t.ok(worst.disk <= DISK, `disk tier peaked at ${worst.disk} of ${DISK} bytes`)
  t.ok(worst.files <= DISK, `chunk files on disk peaked at ${worst.files} of ${DISK} bytes`)
  t.ok(worst.tmp <= 2 * CS, `files being written peaked at ${worst.tmp} bytes (two writes at a time)`)
  t.ok(await metric(edge.url, 'reelcdn_edge_evictions_total', { tier: 'ram' }) > 0, 'RAM evicted')
  t.ok(await metric(edge.url, 'reelcdn_edge_evictions_total', { tier: 'disk' }) > 0, 'disk evicted')
  const hits = await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'ram_hit' }) + await metric(edge.url, 'reelcdn_edge_bytes_served_total', { result: 'disk_hit' })
  const all = await metric(edge.url, 'reelcdn_edge_bytes_served_total')
  t.comment(`byte hit ratio under churn: ${(hits / all).toFixed(2)}; upstream bytes ${await metric(edge.url, 'reelcdn_edge_upstream_bytes_total')} for ${all} served`)
})

t.test('a disk hit is served from the file and promoted to RAM', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(6 * CS, 'promo')
  await up.addTitle('p', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': 4 * CS, 'edge.readaheadChunks': 0 })
  const url = `${edge.url}/v1/content/p`
  const reads = (result: string) => metric(edge.url, 'reelcdn_edge_requests_total', { result })
  // A one-byte answer goes out before its chunk's fill ends, so wait for each fill:
  // fills that end out of order would enter RAM out of order and evict another chunk.
  for (let i = 0; i < 5; i++) { // chunk 0 leaves RAM, stays on disk
    await get(url, { range: `bytes=${i * CS}-${i * CS}` })
    await settled(edge)
  }
  await edge.cache.disk.idle()
  // inside chunk 0 only: its promotion evicts RAM's least recent chunk (1), which a range
  // reaching into chunk 1 would then find on disk or not, depending on which came first
  const r = await get(url, { range: 'bytes=100-5099' })
  t.ok(r.body.equals(bytes.subarray(100, 5100)))
  t.equal(await reads('disk_hit'), 1)
  await until(async () => (await metric(edge.url, 'reelcdn_edge_promotions_total', { result: 'ok' })) === 1, 'the promotion')
  await get(url, { range: 'bytes=0-9' })
  await get(url, { range: `bytes=${4 * CS}-${4 * CS + 9}` })
  t.equal(await reads('disk_hit'), 1)
  t.equal(await reads('ram_hit'), 2, 'chunk 0 is in RAM now, and chunk 4 still is')
  t.equal(up.requests('p'), 5)
})

t.test('either tier can be turned off', async t => {
  const up = await startContentUpstream(t)
  const bytes = titleBytes(3 * CS, 'off')
  await up.addTitle('o', bytes, { chunkSize: CS })
  const diskOnly = await startTestEdge(t, up, { 'edge.ramBytes': 0, 'edge.readaheadChunks': 0 })
  await get(`${diskOnly.url}/v1/content/o`)
  await diskOnly.cache.disk.idle()
  t.ok((await get(`${diskOnly.url}/v1/content/o`)).body.equals(bytes))
  t.equal(await metric(diskOnly.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }), 3)
  t.equal(diskOnly.cache.ram.stats().bytes, 0)

  const dir = freshDir(t)
  const ramOnly = await startTestEdge(t, up, { 'edge.diskBytes': 0, 'edge.readaheadChunks': 0, 'edge.dataDir': dir })
  await get(`${ramOnly.url}/v1/content/o`)
  t.ok((await get(`${ramOnly.url}/v1/content/o`)).body.equals(bytes))
  t.equal(await metric(ramOnly.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }), 3)
  t.equal(bytesIn(join(dir, 'chunks')), 0)
})

t.test('disk hits verify every block they send: corrupt bytes on disk are never served, the rest comes from upstream', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const big = 1024 * 1024 // 16 blocks: with 64 KiB reads (+ one block), a whole chunk is several pieces
  const bytes = titleBytes(3 * big, 'rot')
  await up.addTitle('rot', bytes, { chunkSize: big })
  const dir = freshDir(t)
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': 0, 'edge.readaheadChunks': 0, 'edge.readSize': 65536, 'edge.dataDir': dir })
  const url = `${edge.url}/v1/content/rot`
  t.ok((await get(url)).body.equals(bytes), 'the first read fills the disk tier')
  await settled(edge)
  t.equal(up.requests('rot'), 3)
  const file = (i: number) => {
    const d = join(dir, 'chunks', 'rot')
    return join(d, readdirSync(d).find(f => f.startsWith(`${i}-`))!)
  }
  const flip = (path: string, at: number) => {
    const b = readFileSync(path)
    b[at]! ^= 0x10
    writeFileSync(path, b)
  }
  // chunk 0: damage in its first block, found before any byte went out
  flip(file(0), 1234)
  const r0 = await get(url, { range: 'bytes=1000-2000' })
  t.equal(r0.status, 206)
  t.ok(r0.body.equals(bytes.subarray(1000, 2001)), 'a corrupt first piece: the range comes from upstream, right')
  // chunk 1: damage deep in the chunk, found after the pieces before it went out
  flip(file(1), 700_000)
  const r1 = await rawGet(url, `bytes=${big}-${2 * big - 1}`)
  t.equal(r1.status, 206)
  t.ok(r1.body.equals(bytes.subarray(big, 2 * big)), 'a corrupt piece mid-chunk: the verified pieces from disk, the rest from upstream, every byte right')
  // chunk 2 through the multi-chunk path: a range from chunk 1 (now refilled) into chunk 2, damaged mid-way
  await settled(edge)
  flip(file(2), 300_000)
  const r2 = await rawGet(url, `bytes=${big + 5}-${3 * big - 1}`)
  t.equal(r2.status, 206)
  t.ok(r2.body.equals(bytes.subarray(big + 5, 3 * big)), 'across chunks too')
  t.equal(await metric(edge.url, 'reelcdn_edge_corrupt_chunks_total', { found_by: 'read' }), 3)
  // each refill is a chunk fill, plus a ranged fetch when it starts deep in the chunk (the miss path's design)
  const refetched = up.requests('rot') - 3
  t.ok(refetched >= 3 && refetched <= 6, `the 3 corrupt chunks were fetched again (${refetched} upstream requests)`)
  await settled(edge)
  t.ok((await get(url)).body.equals(bytes), 'and all of it reads right from the refilled disk tier')
  t.equal(up.requests('rot') - 3, refetched, 'with no upstream request')
})

/** A GET whose body may be cut: the status and whatever bytes arrived before the cut. */
function rawGet(url: string, range: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { range } }, res => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) })
      res.on('end', done)
      res.on('error', done)
      res.on('aborted', done)
    })
    req.on('error', reject)
  })
}

t.test('disk hits reuse their read buffers: one request after another allocates no new one', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const big = 1024 * 1024
  const bytes = titleBytes(4 * big, 'pool')
  await up.addTitle('pool', bytes, { chunkSize: big })
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': 0, 'edge.readaheadChunks': 0, 'edge.readSize': 262144 })
  const url = `${edge.url}/v1/content/pool`
  t.ok((await get(url)).body.equals(bytes))
  await edge.cache.disk.idle()
  for (let i = 0; i < 40; i++) {
    const s = (i * 97_531) % (3 * big)
    const r = await get(url, { range: `bytes=${s}-${s + 200_000}` })
    if (!r.body.equals(bytes.subarray(s, s + 200_001))) t.fail(`range ${s} is wrong`)
  }
  const whole = await get(url, { range: `bytes=${big}-${2 * big - 1}` })
  t.ok(whole.body.equals(bytes.subarray(big, 2 * big)), 'a whole chunk in several pieces is right')
  t.equal(await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'disk_hit' }) >= 41, true)
  t.ok(edge.cache.disk.pool.allocated <= 3, `${edge.cache.disk.pool.allocated} read buffers allocated for 41 requests`)
})
