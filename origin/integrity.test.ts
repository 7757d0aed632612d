import t from 'tap'
import { request } from 'undici'
import { flipByte, get, putChunk, randomChunk, startTestOrigin } from '../test/helpers/origin.js'
import { BLOCK_SIZE } from '../lib/integrity/block-hasher.js'

const MiB = 1024 * 1024

async function metric(url: string, name: string): Promise<number> {
  const text = (await get(`${url}/metrics`)).body.toString()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop())
  return sum
}

for (const cache of [0, 64 * MiB]) {
  t.test(`a byte flipped on disk is never served (memory cache ${cache ? 'on' : 'off'})`, async t => {
    const o = await startTestOrigin(t, { 'origin.memoryCacheBytes': cache })
    const chunk = randomChunk(4 * MiB)
    const put = await putChunk(o.url, 'rot', 0, chunk)
    const path = o.store.path('rot', 0, put.json.sha256)
    const bad = 3 * MiB + 12345 // inside block 48, in the 4th 1 MiB segment
    flipByte(path, bad)

    // a range clear of the bad block is verified block by block and served
    const clean = await get(`${o.url}/v1/chunks/rot/0`, { range: 'bytes=0-99999' })
    t.equal(clean.status, 206)
    t.ok(clean.body.equals(chunk.subarray(0, 100000)))

    // the whole chunk: headers go out, then the connection is cut before the bad block
    const res = await request(`${o.url}/v1/chunks/rot/0`)
    t.equal(res.statusCode, 200)
    const got: Buffer[] = []
    await t.rejects((async () => { for await (const c of res.body) got.push(c as Buffer) })(), 'the body is cut short')
    const body = Buffer.concat(got)
    t.ok(body.length <= Math.floor(bad / BLOCK_SIZE) * BLOCK_SIZE, `only bytes before the bad block were sent (${body.length})`)
    t.ok(body.equals(chunk.subarray(0, body.length)), 'and they are the right bytes')

    // now marked corrupt: every read fails loudly until it is repaired
    const after = await get(`${o.url}/v1/chunks/rot/0`, { range: 'bytes=0-9' })
    t.equal(after.status, 500)
    t.equal(JSON.parse(after.body.toString()).error.code, 'CDN_ERR_CORRUPT')
    t.ok(await metric(o.url, 'reelcdn_origin_corrupt_blocks_total') >= 1, 'counted in metrics')
    const inv = JSON.parse((await get(`${o.url}/v1/chunks`)).body.toString())
    t.equal(inv.chunks[0].state, 'corrupt', 'the inventory shows it')

    // a PUT of the right bytes repairs it
    t.equal((await putChunk(o.url, 'rot', 0, chunk)).status, 201)
    const healed = await get(`${o.url}/v1/chunks/rot/0`)
    t.equal(healed.status, 200)
    t.ok(healed.body.equals(chunk), 'served again after repair')
  })
}

t.test('a range that starts in a bad block fails before any header', async t => {
  const o = await startTestOrigin(t, { 'origin.memoryCacheBytes': 0 })
  const chunk = randomChunk(MiB)
  const put = await putChunk(o.url, 'rot2', 0, chunk)
  flipByte(o.store.path('rot2', 0, put.json.sha256), 500_000)
  const r = await get(`${o.url}/v1/chunks/rot2/0`, { range: 'bytes=499000-501000' })
  t.equal(r.status, 500)
})

t.test('the scrubber finds rot nobody has read, and reports it', async t => {
  const o = await startTestOrigin(t, { 'origin.scrubRateMBps': 1000 })
  const chunks = [randomChunk(MiB), randomChunk(MiB + 7), randomChunk(100)]
  const rows = []
  for (let i = 0; i < chunks.length; i++) rows.push((await putChunk(o.url, 'scrub', i, chunks[i]!)).json)
  flipByte(o.store.path('scrub', 1, rows[1].sha256), MiB + 3)
  const found = await o.scrubber.pass(new AbortController().signal)
  t.same(found, ['scrub/1'])
  t.ok(await metric(o.url, 'reelcdn_origin_scrubbed_bytes_total') >= 2 * MiB, 'scrubbed bytes counted')
  const inv = JSON.parse((await get(`${o.url}/v1/chunks`)).body.toString())
  t.same(inv.chunks.map((c: { state: string }) => c.state), ['ok', 'corrupt', 'ok'])
  t.equal((await get(`${o.url}/v1/chunks/scrub/1`)).status, 500)
  t.ok((await get(`${o.url}/v1/chunks/scrub/0`)).body.equals(chunks[0]!), 'healthy chunks still serve')
})
