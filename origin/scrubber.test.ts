import t from 'tap'
import { flipByte, get, putChunk, randomChunk, startTestOrigin, until } from '../test/helpers/origin.js'

/**
 * The background scrubber as a shard runs it: paced to origin.scrubRateMBps,
 * and what it finds shows in /metrics and the inventory. Rates are decimal MB/s.
 */
const MiB = 1024 * 1024

/** The sum of a metric's samples whose line starts with `prefix` (name, optionally with labels). */
async function metric(url: string, prefix: string): Promise<number> {
  const text = (await get(`${url}/metrics`)).body.toString()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(prefix)) sum += Number(line.split(' ').pop())
  return sum
}

t.test('at 4 MB/s, a pass over 8 MiB takes at least 8.4/4 s, and reports the one rotten chunk', async t => {
  const dir = t.testdir()
  const chunks = [randomChunk(2 * MiB), randomChunk(2 * MiB), randomChunk(2 * MiB), randomChunk(2 * MiB)]
  const shas: string[] = []
  {
    const o = await startTestOrigin(t, {}, dir)
    for (let i = 0; i < chunks.length; i++) shas.push((await putChunk(o.url, 'scrubbed', i, chunks[i]!)).json.sha256)
    await o.close()
  }
  const total = chunks.reduce((n, c) => n + c.length, 0)
  const rateMBps = 4

  const restarted = Date.now()
  const t0 = performance.now()
  const o = await startTestOrigin(t, { 'origin.scrubRateMBps': rateMBps, 'origin.scrubIdleMs': 3600_000 }, dir)
  // rot the scrubber meets, not a reader: chunk 2, in its last block (read from disk after the scrubber started)
  flipByte(o.store.path('scrubbed', 2, shas[2]!), 2 * MiB - 10)
  await until(() => o.scrubber.passes >= 1, 'the first scrub pass', 30_000)
  const secs = (performance.now() - t0) / 1000
  const floor = total / 1e6 / rateMBps
  t.comment(`scrubbed ${(total / 1e6).toFixed(2)} MB in ${secs.toFixed(2)} s at ${rateMBps} MB/s (floor ${floor.toFixed(2)} s)`)
  t.ok(secs >= floor - 0.05, `the pass took ${secs.toFixed(2)} s, not less than ${floor.toFixed(2)} s`)

  t.equal(await metric(o.url, 'reelcdn_origin_scrubbed_bytes_total'), total, 'every byte re-read is counted')
  t.equal(await metric(o.url, 'reelcdn_origin_scrub_passes_total'), 1)
  t.equal(await metric(o.url, 'reelcdn_origin_corrupt_blocks_total{found_by="scrub"'), 1, 'the rot counted as found by the scrubber')
  t.equal(await metric(o.url, 'reelcdn_origin_corrupt_blocks_total{found_by="read"'), 0)
  t.equal(await metric(o.url, 'reelcdn_origin_chunks{state="corrupt"'), 1)

  const inv = JSON.parse((await get(`${o.url}/v1/chunks`)).body.toString()) as { chunks: { index: number; state: string; verifiedAt: number }[] }
  t.same(inv.chunks.map(c => c.state), ['ok', 'ok', 'corrupt', 'ok'], 'the inventory shows the corrupt chunk')
  for (const c of inv.chunks) if (c.state === 'ok') t.ok(c.verifiedAt >= restarted, `chunk ${c.index} verified by this pass`)
  t.equal((await get(`${o.url}/v1/chunks/scrubbed/2`)).status, 500, 'and it is not served')
  t.ok((await get(`${o.url}/v1/chunks/scrubbed/3`)).body.equals(chunks[3]!), 'the others are')
})
