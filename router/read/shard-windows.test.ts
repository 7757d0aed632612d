import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ShardClient } from '../cluster/shard-client.js'
import { newRegistry, routerMetrics } from '../../lib/metrics.js'
import { loadConfig } from '../../lib/config/config.js'
import { BLOCK_SIZE } from '../../lib/integrity/block-hasher.js'
import { RelaySlabs, SlabPool, WindowedRead } from './shard-windows.js'

/** shard-windows.ts against a real node:http "shard" on port 0: a read spanning windows, and when its slabs may be reused. */
const SLAB = 4 * BLOCK_SIZE
const CHUNK = 10 * BLOCK_SIZE + 1000
const data = randomBytes(CHUNK)

async function shard(t: { teardown(fn: () => unknown): void }, opts: { stallAfter?: number; connections?: number; headersTimeoutMs?: number } = {}) {
  const ranges: string[] = []
  /** resolves once the shard has been asked for `n` ranges */
  const waits: { n: number; resolve: () => void }[] = []
  const asked = (n: number) => new Promise<void>(resolve => { if (ranges.length >= n) resolve(); else waits.push({ n, resolve }) })
  let open = 0
  const closed: (() => void)[] = []
  const server = http.createServer((req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!
    ranges.push(`${m[1]}-${m[2]}`)
    for (const w of waits.filter(x => ranges.length >= x.n)) w.resolve()
    const [a, b] = [Number(m[1]), Number(m[2])]
    res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${CHUNK}` })
    if (opts.stallAfter !== undefined && b >= opts.stallAfter) return void res.write(data.subarray(a, opts.stallAfter)) // and nothing more
    res.end(data.subarray(a, b + 1))
  })
  server.on('connection', sock => {
    open++
    sock.once('close', () => { open--; for (const c of closed.splice(0)) c() })
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const up = loadConfig({ env: {} }).router.upstream
  const client = new ShardClient({ id: 's1', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 },
    { ...up, bodyTimeoutMs: 500, ...(opts.connections ? { connections: opts.connections } : {}), ...(opts.headersTimeoutMs ? { headersTimeoutMs: opts.headersTimeoutMs } : {}) },
    routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }), 'tok')
  t.teardown(() => client.close())
  /** resolves once a connection to the shard closes */
  const aClose = () => new Promise<void>(r => closed.push(r))
  return { client, ranges, asked, open: () => open, aClose }
}

t.test('a read spanning windows: every byte in order, one block-aligned GET per window, the shard\'s count held throughout', async t => {
  const { client, ranges } = await shard(t)
  const pool = new SlabPool(SLAB, 8)
  const start = BLOCK_SIZE
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), start, CHUNK - 1, pool).open()
  t.equal(client.outstanding, 1)
  const got: Buffer[] = []
  for await (const v of r) got.push(Buffer.from(v))
  t.ok(Buffer.concat(got).equals(data.subarray(start)), 'the bytes, in order')
  t.same(ranges, [`${start}-${start + SLAB - 1}`, `${start + SLAB}-${start + 2 * SLAB - 1}`, `${start + 2 * SLAB}-${CHUNK - 1}`], 'one GET per window')
  t.equal(client.outstanding, 0, 'the count dropped at the end')
  await sleep(0)
  t.equal(pool.idleCount, pool.made, 'every slab back in the pool')
})

t.test('the next window is asked for once this one\'s bytes have landed, while the reader still holds its views', async t => {
  const { client, ranges, asked } = await shard(t)
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  const it = r[Symbol.asyncIterator]()
  const first = await it.next()
  t.notOk(first.done)
  // the reader takes nothing more while the first window lands whole
  await asked(2)
  await sleep(20)
  t.same(ranges, [`0-${SLAB - 1}`, `${SLAB}-${2 * SLAB - 1}`], 'the second window asked for ahead, the third not yet (the first is not written out)')
  const got = [Buffer.from(first.value as Buffer)]
  for (let v = await it.next(); !v.done; v = await it.next()) got.push(Buffer.from(v.value))
  t.ok(Buffer.concat(got).equals(data), 'every byte, in order')
  t.equal(ranges.length, 3)
})

t.test('a read destroyed with a window asked for ahead closes that request too; its turn and every slab come back', async t => {
  // the window ahead sends 1000 bytes and then nothing (until bodyTimeoutMs): the destroy comes first
  const { client, ranges, asked, open, aClose } = await shard(t, { stallAfter: SLAB + 1000, connections: 1 })
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  const it = r[Symbol.asyncIterator]()
  await it.next()
  await asked(2)
  t.equal(open(), 1, 'the window ahead is on the one connection')
  const gone = aClose()
  await it.return(undefined)
  await gone
  t.equal(client.outstanding, 0)
  // its turn came back: the one connection's turn is free
  const turn = await client.readSlot()
  turn()
  await sleep(0)
  t.equal(pool.lent, 0, 'both slabs back')
  t.equal(pool.idleCount, pool.made)
  t.equal(ranges.length, 2, 'nothing more asked for')
})

t.test('a window that fails is not followed by a window ahead', async t => {
  // the first window sends 1000 bytes and then nothing: its body times out (bodyTimeoutMs)
  const { client, ranges, aClose } = await shard(t, { stallAfter: 1000 })
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  const it = r[Symbol.asyncIterator]()
  const gone = aClose()
  t.notOk((await it.next()).done)
  // the reader holds the first view while the window fails underneath
  await gone
  await sleep(50)
  t.same(ranges, [`0-${SLAB - 1}`], 'nothing asked for after the failed window')
  await t.rejects(it.next(), { message: /s1/ })
})

t.test('a window that gets no turn on the shard\'s connections in time fails open() and gives its slab back', async t => {
  const { client } = await shard(t, { connections: 1, headersTimeoutMs: 200 })
  const pool = new SlabPool(SLAB, 8)
  const held = await client.readSlot()
  await t.rejects(new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open())
  held()
  t.equal(pool.lent, 0, 'no slab lent')
  t.equal(client.outstanding, 0)
})

t.test('a slab goes back only once what was sent from it is written out; a read holds two at most', async t => {
  const { client } = await shard(t)
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  // the writes to the client, as the relay makes them: the latest one still in the socket, the ones before it done
  // (the relay waits for the client's socket to drain before it takes more bytes)
  const pending: (() => void)[] = []
  let last: Promise<void> = Promise.resolve()
  r.written = () => last
  const got: Buffer[] = []
  for await (const v of r) {
    for (const p of pending.splice(0)) p()
    got.push(Buffer.from(v))
    last = new Promise<void>(res => pending.push(res))
    t.ok(pool.made <= 2, `at most two slabs made (${pool.made})`)
  }
  t.ok(Buffer.concat(got).equals(data), 'the bytes')
  await sleep(0)
  t.equal(pool.idleCount, pool.made - 1, 'the last slab is not back while a view of it is unwritten')
  for (const p of pending) p()
  await sleep(0)
  t.equal(pool.idleCount, pool.made, 'all back once written')
})

t.test('a window that stalls fails the read, named with its shard; destroy drops the count and gives the slab back', async t => {
  const { client } = await shard(t, { stallAfter: SLAB + 1000 })
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  let n = 0
  await t.rejects((async () => { for await (const v of r) n += v.length })(), { message: /s1/ })
  t.equal(n, SLAB + 1000, 'every byte before the stall')
  t.equal(client.outstanding, 0)
  await sleep(0)
  t.equal(pool.idleCount, pool.made, 'slabs back')
})

t.test('a read destroyed while a window waits for its answer\'s head ends that request at once: the shard sees its connection close', async t => {
  let range = ''
  let sawClose!: () => void
  const closed = new Promise<void>(r => { sawClose = r })
  let asked!: () => void
  const waiting = new Promise<void>(r => { asked = r })
  const server = http.createServer((req, res) => {
    range = req.headers.range ?? ''
    req.socket.once('close', sawClose)
    asked()
    void res // never answered
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const up = loadConfig({ env: {} }).router.upstream
  const client = new ShardClient({ id: 's8', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 },
    { ...up, headersTimeoutMs: 30_000 }, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => client.close())
  const pool = new SlabPool(SLAB, 8)
  const r = new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool)
  const opened = r.open()
  await waiting
  const t0 = Date.now()
  r.destroy()
  await t.rejects(opened)
  t.equal(await Promise.race([closed.then(() => 'closed'), sleep(5000).then(() => 'still open after 5 s')]), 'closed',
    'the shard saw the request\'s connection close, long before the head timeout (30 s)')
  t.equal(range, `bytes=0-${SLAB - 1}`, 'the first window\'s request')
  t.ok(Date.now() - t0 < 5000)
  t.equal(client.outstanding, 0)
  await sleep(0)
  t.equal(pool.idleCount, pool.made, 'its slab back')
})

t.test('a refusal fails open() with the shard\'s status, before any byte', async t => {
  const server = http.createServer((_req, res) => {
    res.writeHead(412, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'CDN_ERR_PRECONDITION', message: 'other bytes' } }))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const up = loadConfig({ env: {} }).router.upstream
  const client = new ShardClient({ id: 's9', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 }, up,
    routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => client.close())
  const pool = new SlabPool(SLAB, 8)
  await t.rejects(new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open(), { name: 'ShardRefusedError', upstreamStatus: 412 })
  t.equal(client.outstanding, 0)
  await sleep(0)
  t.equal(pool.idleCount, 1, 'its slab back')
})

t.test('windows take turns on the shard\'s connections: at most router.upstream.connections at once, each only while its bytes land (one here)', async t => {
  let inFlight = 0
  let most = 0
  const server = http.createServer((req, res) => {
    most = Math.max(most, ++inFlight)
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!
    const [a, b] = [Number(m[1]), Number(m[2])]
    // each answer takes a while: the turns overlap unless they are taken in turn
    setTimeout(() => {
      res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${CHUNK}` }).end(data.subarray(a, b + 1), () => inFlight--)
    }, 20)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const up = loadConfig({ env: {} }).router.upstream
  const client = new ShardClient({ id: 's7', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 },
    { ...up, connections: 1, headersTimeoutMs: 1000 }, routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => client.close())
  const pool = new SlabPool(SLAB, 16)
  const drain = async (r: WindowedRead) => { const got: Buffer[] = []; for await (const v of r) got.push(Buffer.from(v)); return Buffer.concat(got) }
  // a read whose client takes nothing: its first window landed, and it holds no turn
  const idle = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  const reads = await Promise.all([0, 1, 2, 3, 4].map(async () => drain(await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open())))
  for (const [i, b] of reads.entries()) t.ok(b.equals(data), `read ${i} whole`)
  t.equal(most, 1, 'one request at a time: the turns, not the connections, bound them')
  t.ok((await drain(idle)).equals(data), 'the read that waited on its client, whole')
  t.equal(client.outstanding, 0)
  // no turn within headersTimeoutMs: a timeout naming the shard
  const quick = new ShardClient(client.spec, { ...up, connections: 1, headersTimeoutMs: 200 },
    routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => quick.close())
  const release = await quick.readSlot()
  await t.rejects(quick.readSlot(), { name: 'UpstreamTimeoutError', message: /s7/ })
  const next = quick.readSlot()
  release()
  release()
  ;(await next)()
  t.pass('a turn given back passes to the next in line, once')
})

t.test('a window shorter than asked (its Content-Length) fails the read before a byte of it; the next window is never asked for', async t => {
  const ranges: string[] = []
  const server = http.createServer((req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')!
    ranges.push(`${m[1]}-${m[2]}`)
    const [a, b] = [Number(m[1]), Number(m[2])]
    // the second window comes 1000 bytes short, its Content-Range as asked: a proxy or shard that lost bytes
    const e = ranges.length === 2 ? b - 1000 : b
    res.writeHead(206, { 'content-length': e - a + 1, 'content-range': `bytes ${a}-${b}/${CHUNK}` }).end(data.subarray(a, e + 1))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const up = loadConfig({ env: {} }).router.upstream
  const client = new ShardClient({ id: 's5', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, weight: 1 }, up,
    routerMetrics(newRegistry('t', false), { shards: () => [], replicas: () => undefined }))
  t.teardown(() => client.close())
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, new SlabPool(SLAB, 8)).open()
  let n = 0
  await t.rejects((async () => { for await (const v of r) n += v.length })(), { name: 'UpstreamError', message: /s5.*content-length/ })
  t.equal(n, SLAB, 'the first window only')
  t.equal(ranges.length, 2, 'no third window')
})

t.test('all reads\' slabs stay within router.relayMemoryBytes: past it a read waits its turn, in order, or times out', async t => {
  const MiB = 1024 * 1024
  // a wait long enough that a loaded machine's pauses do not time out the reads in line
  const slabs = new RelaySlabs(4 * MiB, 5000)
  const small = slabs.for(1 * MiB)
  t.equal(small.bytes, 2 * MiB)
  t.equal(slabs.for(2 * MiB).bytes, 2 * MiB)
  t.equal(slabs.for(3 * MiB).bytes, 8 * MiB, 'a segment-sized read: 8 MiB')
  t.equal(slabs.for(8 * MiB).bytes, 8 * MiB)
  t.equal(slabs.for(8 * MiB + 1).bytes, 8 * MiB, 'a longer read on a small budget: 8 MiB windows')
  const a = await small.take()
  const b = await small.take()
  t.same(slabs.bytes().inUse, 4 * MiB)
  const order: string[] = []
  const c = Promise.resolve(small.take()).then(x => { order.push('c'); return x })
  const d = Promise.resolve(small.take()).then(x => { order.push('d'); return x })
  await sleep(20)
  t.same(order, [], 'both wait: the budget is lent')
  small.give(a)
  await sleep(0)
  t.same(order, ['c'], 'the first in line goes when room frees, the next still waits')
  small.give(b)
  const [sc, sd] = await Promise.all([c, d])
  t.same(order, ['c', 'd'], 'in order')
  small.give(sc!)
  small.give(sd!)
  t.same(slabs.bytes().inUse, 0)
  // nothing frees within waitMs: a timeout, the read's turn lost
  const quick = new RelaySlabs(4 * MiB, 100)
  const q = quick.for(MiB)
  const held = [await q.take(), await q.take()]
  await t.rejects(Promise.resolve(q.take()), { name: 'UpstreamTimeoutError', message: /relayMemoryBytes/ })
  for (const x of held) q.give(x)
  t.same(quick.bytes().inUse, 0)
  // a slab larger than the whole budget is still lent when nothing else is
  const long = slabs.for(20 * MiB)
  const big = await long.take()
  t.equal(big.length, 8 * MiB)
  t.same(slabs.bytes().inUse, 8 * MiB)
  long.give(big)
  t.same(slabs.bytes().inUse, 0)
})

t.test('a long read takes 16 MiB slabs while two more fit in a quarter of the budget, 8 MiB ones otherwise', async t => {
  const MiB = 1024 * 1024
  const slabs = new RelaySlabs(256 * MiB, 1000)
  // a read keeps the lender it was given for its life
  const long = slabs.for(64 * MiB)
  t.equal(long.bytes, 16 * MiB, 'nothing lent')
  const a = await long.take()
  const b = await long.take()
  t.equal(slabs.for(9 * MiB).bytes, 16 * MiB, '32 MiB lent: 32 + 32 is a quarter of 256')
  const c = await slabs.for(9 * MiB).take()
  const later = slabs.for(64 * MiB)
  t.equal(later.bytes, 8 * MiB, '48 MiB lent: past a quarter with two more')
  const d = await later.take()
  t.equal(d.length, 8 * MiB)
  t.equal(slabs.for(4 * MiB).bytes, 8 * MiB, 'a segment-sized read: 8 MiB either way')
  t.equal(slabs.for(MiB).bytes, 2 * MiB)
  // given back through any lender, a slab goes to the pool of its size
  for (const x of [a, b, c, d]) later.give(x)
  t.same(slabs.bytes(), { inUse: 0, idle: 2 * 16 * MiB + 8 * MiB }, 'two 16 MiB slabs kept idle, the third left to the GC, the 8 MiB one kept')
  t.equal(slabs.for(64 * MiB).bytes, 16 * MiB, 'memory to spare again')
  t.equal(new RelaySlabs(100 * MiB, 1000).for(64 * MiB).bytes, 8 * MiB, 'a budget under 128 MiB: 8 MiB windows always')
})

t.test('a read waiting for memory is served a slab of its own size, whichever pool it waits on', async t => {
  const MiB = 1024 * 1024
  const slabs = new RelaySlabs(128 * MiB, 1000)
  const long = slabs.for(64 * MiB)
  const seg = slabs.for(4 * MiB)
  t.equal(long.bytes, 16 * MiB)
  const lent = await Promise.all(Array.from({ length: 8 }, () => long.take()))
  const waiting = [Promise.resolve(seg.take()), Promise.resolve(long.take())]
  await sleep(10)
  t.same(slabs.bytes().inUse, 128 * MiB, 'both wait: the budget is lent')
  long.give(lent.pop()!)
  const s = await waiting[0]!
  t.equal(s.length, 8 * MiB, 'the segment-sized read, first in line: an 8 MiB slab')
  t.same(slabs.bytes().inUse, 120 * MiB, 'the long read still waits: 120 + 16 MiB is past the budget')
  seg.give(s)
  const l = await waiting[1]!
  t.equal(l.length, 16 * MiB, 'then the long read: a 16 MiB slab')
  for (const x of [...lent, l]) long.give(x)
  t.same(slabs.bytes().inUse, 0)
})

t.test('a read that leaves the line late lets a smaller one behind it go, with no slab given back meanwhile', async t => {
  const MiB = 1024 * 1024
  const slabs = new RelaySlabs(128 * MiB, 200)
  const long = slabs.for(64 * MiB)
  t.equal(long.bytes, 16 * MiB)
  const lent = await Promise.all(Array.from({ length: 7 }, () => long.take()))
  const seg = await slabs.for(4 * MiB).take()
  t.same(slabs.bytes().inUse, 120 * MiB)
  // a 16 MiB window does not fit (136 MiB); a 2 MiB read behind it would (122 MiB) but waits its turn
  const big = Promise.resolve(long.take())
  await sleep(100)
  const small = Promise.resolve(slabs.for(MiB).take())
  await t.rejects(big, { name: 'UpstreamTimeoutError' })
  const got = await small
  t.equal(got.length, 2 * MiB, 'served as soon as the one before it left, well before its own timeout')
  for (const x of [...lent, seg, got]) long.give(x)
  t.same(slabs.bytes().inUse, 0)
})

t.test('a read destroyed while its window waits for relay memory, or for a turn on the shard\'s connections, leaves that line at once and asks the shard nothing', async t => {
  const MiB = 1024 * 1024
  const { client, ranges } = await shard(t, { connections: 1, headersTimeoutMs: 5000 })
  // memory: the budget is lent, so the read's first window waits in the relay's memory line (5 s at most)
  const slabs = new RelaySlabs(4 * MiB, 5000)
  const lender = slabs.for(SLAB)
  const lent = [await lender.take(), await lender.take()]
  /** opens `r`, lets its first window wait, destroys it: open() must fail at once */
  const leavesAtOnce = async (r: WindowedRead, what: string) => {
    const opened = r.open()
    opened.catch(() => {})
    await sleep(20)
    const t0 = performance.now()
    r.destroy()
    await t.rejects(opened, /left the read/)
    t.ok(performance.now() - t0 < 1000, `open() failed at once, not when ${what} or the wait ran out`)
  }
  await leavesAtOnce(new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, lender), 'memory freed')
  const next = Promise.resolve(lender.take())
  for (const x of lent) lender.give(x)
  lender.give(await next)
  t.same(slabs.bytes().inUse, 0, 'the slabs went to the read behind it and back: none to the read that left')
  // a turn: the shard's one connection is held, so the read's first window waits for a turn (5 s at most)
  const held = await client.readSlot()
  const pool = new SlabPool(SLAB, 8)
  await leavesAtOnce(new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool), 'the turn came')
  t.equal(pool.lent, 0, 'its slab back')
  const after = client.readSlot()
  held()
  ;(await after)()
  t.same(ranges, [], 'the shard was asked nothing')
  t.equal(client.outstanding, 0)
})

t.test('a read destroyed between two views fails its next step: it never ends as if whole', async t => {
  const { client } = await shard(t)
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  const it = r[Symbol.asyncIterator]()
  const first = await it.next()
  t.notOk(first.done, 'a first view')
  r.destroy()
  await t.rejects(it.next(), /left the read/, 'the next step fails: the reader does not take a short read for an end')
  t.equal(client.outstanding, 0)
})

t.test('a read destroyed after open and before its first view fails its first step as having left', async t => {
  const { client } = await shard(t)
  const pool = new SlabPool(SLAB, 8)
  const r = await new WindowedRead(client, 'sid', 0, 'a'.repeat(64), 0, CHUNK - 1, pool).open()
  r.destroy()
  await t.rejects(r[Symbol.asyncIterator]().next(), /left the read/, 'not a TypeError on the window it no longer has')
  t.equal(pool.lent, 0, 'its slab back')
})
