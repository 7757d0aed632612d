import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'
import { ZERO_COPY_AVAILABLE, ZERO_COPY_MISSING } from '../../lib/net/zero-copy.js'

/**
 * Chunk memory reused (edge/tiers/chunk-arena.ts) never sends a player wrong
 * bytes. A RAM tier of one chunk evicts a chunk for every chunk filled, so
 * fills write into the memory of evicted chunks; a player that stopped
 * reading (a raw socket that is not read, so the edge's socket buffers fill
 * and the rest of its chunk waits in the edge) must keep its chunk's memory
 * out of reuse until it has every byte, whether it read a RAM hit or a fill.
 * Chunks are larger than the loopback's socket buffers can absorb.
 */
const MiB = 1024 ** 2
const CS = 16 * MiB
const CHUNKS = 6

/** A player that sends its request and then reads nothing until `rest` (returns the body, byte-exact length checked). */
async function stalledPlayer(url: string, path: string, range: string) {
  const u = new URL(url)
  const sock = net.connect(Number(u.port), u.hostname)
  await once(sock, 'connect')
  sock.pause()
  sock.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nrange: ${range}\r\nconnection: close\r\n\r\n`)
  const rest = async (): Promise<Buffer> => {
    const parts: Buffer[] = []
    sock.on('data', (b: Buffer) => parts.push(b))
    sock.resume()
    await once(sock, 'end')
    const all = Buffer.concat(parts)
    const head = all.indexOf('\r\n\r\n')
    return all.subarray(head + 4)
  }
  return { sock, rest }
}

async function setup(t: Test, cs = CS, name = 'arena') {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * cs, name)
  await up.addTitle(name, bytes, { chunkSize: cs })
  const edge = await startTestEdge(t, up, { 'edge.ramBytes': cs, 'edge.diskBytes': 0, 'edge.readaheadChunks': 0, 'edge.maxFills': 2,
    'edge.sendStallTimeoutMs': 60_000 })
  const chunk = (i: number) => bytes.subarray(i * cs, (i + 1) * cs)
  const range = (i: number) => `bytes=${i * cs}-${(i + 1) * cs - 1}`
  /** a player reading chunk `i` whole, byte-compared */
  const read = async (i: number) => {
    const r = await get(`${edge.url}/v1/content/${name}`, { range: range(i) })
    t.equal(r.status, 206)
    t.ok(r.body.equals(chunk(i)), `chunk ${i} byte-exact`)
  }
  const blocked = (n: number) => until(async () => (await metric(edge.url, 'reelcdn_edge_responses_blocked')) >= n, `${n} response(s) blocked on a stalled player`)
  return { up, edge, chunk, range, read, blocked }
}

/** The accounting after a run: the RAM tier within its bytes, idle memory within maxFills chunks, and memory reused. */
async function accounted(t: Test, url: string) {
  t.ok(await metric(url, 'reelcdn_edge_tier_bytes', { tier: 'ram' }) <= CS, 'the RAM tier\'s bytes stay within its capacity')
  t.ok(await metric(url, 'reelcdn_edge_chunk_slots_idle_bytes') <= 2 * CS, 'idle chunk memory stays within edge.maxFills chunks')
  t.ok(await metric(url, 'reelcdn_edge_chunk_slots_total', { result: 'reused' }) >= 1, 'fills wrote into reused memory')
}

t.test('a stalled player\'s RAM hit keeps its chunk\'s memory from later fills until it has every byte', async t => {
  const { edge, chunk, range, read, blocked } = await setup(t)
  await read(0)
  const a = await stalledPlayer(edge.url, '/v1/content/arena', range(0))
  t.teardown(() => a.sock.destroy())
  await blocked(1)
  // every chunk filled evicts the one before: chunk 0's memory would be the first reused, under the stalled player
  for (let i = 1; i < CHUNKS; i++) await read(i)
  t.ok((await a.rest()).equals(chunk(0)), 'the stalled player gets chunk 0, byte-exact, after five chunks were filled through its memory\'s tier')
  await accounted(t, edge.url)
})

t.test('a stalled player reading a fill keeps its memory after the fill committed and its chunk was evicted', async t => {
  const { up, edge, chunk, range, read, blocked } = await setup(t)
  const b = await stalledPlayer(edge.url, '/v1/content/arena', range(3))
  t.teardown(() => b.sock.destroy())
  await up.requested(1, 'arena', 3)
  await blocked(1)
  // the fill ends on its own (a slow reader never holds one up) and commits chunk 3; the reads below evict it
  await until(async () => (await metric(edge.url, 'reelcdn_edge_fills_total', { result: 'ok' })) === 1, 'chunk 3\'s fill to end')
  for (const i of [4, 5, 0, 1, 2]) await read(i)
  t.ok((await b.rest()).equals(chunk(3)), 'the stalled player gets chunk 3, byte-exact')
  await accounted(t, edge.url)
})

t.test('zero-copy: a RAM hit spliced whole into a stalled player\'s socket keeps its bytes while fills rewrite its chunk\'s memory', async t => {
  // 1 MiB chunks: a whole response fits in the loopback's socket buffers, so it is finished (every page handed to the
  // kernel, its chunk's memory free for the next fill) while the player has read none of it
  const { edge, chunk, range, read } = await setup(t, MiB, 'zc')
  await read(0)
  const spliced = await metric(edge.url, 'reelcdn_edge_zero_copy_bytes_total', { how: 'spliced' })
  const a = await stalledPlayer(edge.url, '/v1/content/zc', range(0))
  t.teardown(() => a.sock.destroy())
  await until(async () => (await metric(edge.url, 'reelcdn_edge_zero_copy_bytes_total', { how: 'spliced' })) - spliced >= MiB - 64 * 1024 &&
    (await metric(edge.url, 'reelcdn_edge_responses_blocked')) === 0, 'the stalled player\'s RAM hit spliced whole and finished')
  for (let i = 1; i < CHUNKS; i++) await read(i)
  t.ok(await metric(edge.url, 'reelcdn_edge_chunk_slots_total', { result: 'reused' }) >= 1, 'fills wrote into reused memory')
  t.ok((await a.rest()).equals(chunk(0)), 'the stalled player gets chunk 0 as it was when spliced')
})

t.test('the RAM tier\'s chunk memory is faulted in at start (edge.ramPrefault): fills during and after it byte-exact, into its slots; off, nothing is', { skip: ZERO_COPY_AVAILABLE ? false : `no splice addon: ${ZERO_COPY_MISSING}` }, async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'pre')
  await up.addTitle('pre', bytes, { chunkSize: CS })
  const settings = { 'cluster.chunkSize': CS, 'edge.ramBytes': 3 * CS, 'edge.diskBytes': 0, 'edge.readaheadChunks': 0 }
  const read = async (url: string, i: number) => {
    const r = await get(`${url}/v1/content/pre`, { range: `bytes=${i * CS}-${(i + 1) * CS - 1}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(bytes.subarray(i * CS, (i + 1) * CS)), `chunk ${i} byte-exact`)
  }
  const edge = await startTestEdge(t, up, { ...settings, 'edge.ramPrefault': true })
  // at once: the fill and the next spare take slots while they are being faulted in
  await read(edge.url, 0)
  await until(async () => (await metric(edge.url, 'reelcdn_edge_chunk_slots_prefault_pending_bytes')) === 0, 'the RAM tier\'s memory faulted in')
  t.ok(await metric(edge.url, 'reelcdn_edge_chunk_slots_prefaulted_bytes') >= 2 * CS, 'the slots no fill took meanwhile were faulted in')
  for (let i = 1; i < CHUNKS; i++) await read(edge.url, i)
  t.equal(await metric(edge.url, 'reelcdn_edge_chunk_slots_total', { result: 'allocated' }), 0, 'every fill wrote into a slot created at start, or one an eviction left')

  const off = await startTestEdge(t, up, { ...settings, 'edge.ramPrefault': false })
  await read(off.url, 0)
  t.equal(await metric(off.url, 'reelcdn_edge_chunk_slots_prefaulted_bytes'), 0, 'off: nothing faulted in ahead')
  t.equal(await metric(off.url, 'reelcdn_edge_chunk_slots_prefault_pending_bytes'), 0, 'nor pending')
})

t.test('promotions from the disk tier read into the arena\'s slots: the RAM tier\'s memory is the memory reserved for it', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const bytes = titleBytes(CHUNKS * CS, 'promo')
  await up.addTitle('promo', bytes, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'cluster.chunkSize': CS, 'edge.ramBytes': CS, 'edge.diskBytes': 8 * CS, 'edge.readaheadChunks': 0 })
  const range = (i: number) => ({ range: `bytes=${i * CS}-${(i + 1) * CS - 1}` })
  for (let i = 0; i < 3; i++) t.ok((await get(`${edge.url}/v1/content/promo`, range(i))).body.equals(bytes.subarray(i * CS, (i + 1) * CS)))
  await until(async () => (await metric(edge.url, 'reelcdn_edge_disk_writes_pending')) === 0, 'disk writes done')
  const taken = async () => ['reused', 'reserved', 'allocated'].reduce(async (n, r) => (await n) + await metric(edge.url, 'reelcdn_edge_chunk_slots_total', { result: r }), Promise.resolve(0))
  const before = await taken()
  // chunk 0 left RAM (a tier of one chunk) but is on disk: read twice, it is promoted
  for (let k = 0; k < 2; k++) t.ok((await get(`${edge.url}/v1/content/promo`, range(0))).body.equals(bytes.subarray(0, CS)), 'chunk 0 byte-exact from disk')
  await until(async () => (await metric(edge.url, 'reelcdn_edge_promotions_total', { result: 'ok' })) >= 1, 'a promotion to RAM')
  t.ok(await taken() > before, 'the promotion took a slot from the arena')
  t.equal(await metric(edge.url, 'reelcdn_edge_fills_total', { result: 'ok' }), 3, 'no fill for it: the promotion read the disk tier')
  t.ok((await get(`${edge.url}/v1/content/promo`, range(0))).body.equals(bytes.subarray(0, CS)), 'the promoted chunk byte-exact from RAM')
})
