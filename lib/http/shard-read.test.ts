import t from 'tap'
import http from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { ShardReads, type BodyDest } from './shard-read.js'
import { Cancel } from '../cancel.js'

/** shard-read.ts against a real node:http server on port 0: bytes land where they belong, and nowhere else. */
const SIZE = 4 * 1024 * 1024
const data = Buffer.alloc(SIZE)
for (let i = 0; i < SIZE; i++) data[i] = (i * 13 + 5) & 0xff

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void
async function server(t: { teardown(fn: () => void): void }, handler: Handler) {
  let connections = 0
  const sockets: Socket[] = []
  const s = http.createServer(handler)
  s.on('connection', sock => { connections++; sockets.push(sock); sock.on('error', () => {}) })
  s.keepAliveTimeout = 5000
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, connections: () => connections, sockets, s }
}

/** Serves data[from, to) for `bytes=from-to-1`, as a shard does. */
const ranged: Handler = (req, res) => {
  const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '')
  const [from, last] = m ? [Number(m[1]), Number(m[2])] : [0, SIZE - 1]
  res.writeHead(m ? 206 : 200, { 'content-length': last - from + 1, etag: '"x"' })
  res.end(data.subarray(from, last + 1))
}

function dest(limit = SIZE) {
  const d = { buf: Buffer.alloc(SIZE, 0xee), limit, claimed: 0, end: () => d.limit, claim: (n: number) => { d.claimed = Math.max(d.claimed, n) } }
  return d satisfies BodyDest
}

const opts = { connections: 4, headersTimeoutMs: 2000, idleTimeoutMs: 2000 }

t.test('a body lands in the destination at its chunk offsets; the views handed on are those bytes; the connection is kept', async t => {
  const srv = await server(t, ranged)
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  for (const [from, to] of [[0, SIZE], [65536, 3 * 65536 + 100]] as const) {
    const d = dest()
    const a = await reads.get('/c', { range: `bytes=${from}-${to - 1}` }, d, from, 206, AbortSignal.timeout(5000))
    t.equal(a.statusCode, 206)
    t.equal(a.headers.etag, '"x"')
    let at = from
    for await (const v of a.body) {
      t.equal(v.buffer, d.buf.buffer, 'a view of the destination') || t.bailout()
      t.equal(v.byteOffset - d.buf.byteOffset, at, 'at its own offset') || t.bailout()
      at += v.length
    }
    t.equal(at, to, 'every byte')
    t.ok(d.buf.subarray(from, to).equals(data.subarray(from, to)), 'the right bytes')
    t.ok(d.buf.subarray(0, from).every(b => b === 0xee) && d.buf.subarray(to).every(b => b === 0xee), 'nothing written outside the body')
  }
  t.equal(srv.connections(), 1, 'one connection for both')
})

t.test('the fill wanting less mid-body: nothing lands past what it wants or what was claimed before', async t => {
  let go!: () => void
  const gate = new Promise<void>(r => { go = r })
  const srv = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-length': SIZE })
    res.write(data.subarray(0, 1024 * 1024))
    void gate.then(() => res.end(data.subarray(1024 * 1024)))
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  const a = await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))
  const it = a.body[Symbol.asyncIterator]()
  let got = 0
  while (got < 1024 * 1024) got += (await it.next()).value!.length
  // a split: the segment now ends at 1.5 MiB, or where the source had claimed, whichever is later (fill.ts)
  d.limit = Math.max(1.5 * 1024 * 1024, d.claimed)
  const limit = d.limit
  go()
  for (let r = await it.next(); !r.done; r = await it.next()) got += r.value.length
  t.equal(got, limit, 'bytes up to the new end are handed on')
  t.ok(d.buf.subarray(0, limit).equals(data.subarray(0, limit)))
  t.ok(d.buf.subarray(limit).every(b => b === 0xee), 'nothing written past it')
  t.ok(d.claimed <= limit, 'and nothing claimed past it')
})

t.test('a refusal is read whole for its error code; the connection is kept', async t => {
  let n = 0
  const srv = await server(t, (req, res) => {
    if (n++ === 0) {
      const body = JSON.stringify({ error: { code: 'CDN_ERR_GRANT_INVALID' } })
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      return void res.end(body)
    }
    ranged(req, res)
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  const a = await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))
  t.equal(a.statusCode, 403)
  t.match(await a.body.text(), /CDN_ERR_GRANT_INVALID/)
  t.ok(d.buf.every(b => b === 0xee), 'a refusal never reaches the destination')
  const b = await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))
  for await (const _ of b.body) { /* drain */ }
  t.ok(d.buf.equals(data))
  t.equal(srv.connections(), 1)
})

t.test('a shard that dies mid-body: the read fails as a cut', async t => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-length': SIZE })
    res.write(data.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 20))
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const a = await reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000))
  await t.rejects((async () => { for await (const _ of a.body) { /* drain */ } })(), { name: 'UpstreamCutError', reason: 'cut' })
})

t.test('a reader that leaves early: the connection is closed, and the destination is not written again', async t => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-length': SIZE })
    res.write(data.subarray(0, 256 * 1024))
    setTimeout(() => { if (!res.destroyed) res.end(data.subarray(256 * 1024)) }, 100)
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  const a = await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))
  const it = a.body[Symbol.asyncIterator]()
  await it.next()
  a.body.destroy()
  const snapshot = Buffer.from(d.buf)
  const sock = srv.sockets[0]!
  const closed = sock.closed ? Promise.resolve() : new Promise(r => sock.once('close', r))
  await sleep(300)
  t.ok(d.buf.equals(snapshot), 'no byte landed after the reader left')
  await closed
  t.pass('the shard saw the connection close')
})

t.test('a kept connection the shard closed meanwhile: the next read goes on a new one', async t => {
  const srv = await server(t, ranged)
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  for await (const _ of (await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ }
  srv.s.closeIdleConnections()
  await sleep(100)
  const d2 = dest()
  for await (const _ of (await reads.get('/c', {}, d2, 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ }
  t.ok(d2.buf.equals(data))
  t.equal(srv.connections(), 2)
})

t.test('no answer within headersTimeoutMs: a timeout; an abort mid-body: the abort\'s reason, the connection closed', async t => {
  const srv = await server(t, (req, res) => {
    if (req.url === '/silent') return
    res.writeHead(200, { 'content-length': SIZE })
    res.write(data.subarray(0, 1000))
  })
  const reads = new ShardReads(srv.url, { ...opts, headersTimeoutMs: 100 })
  t.teardown(() => reads.close())
  await t.rejects(reads.get('/silent', {}, dest(), 0, 200, AbortSignal.timeout(5000)), { code: 'CDN_ERR_UPSTREAM_TIMEOUT' })
  const ac = new AbortController()
  const a = await reads.get('/c', {}, dest(), 0, 200, ac.signal)
  const drained = (async () => { for await (const _ of a.body) { /* drain */ } })()
  await sleep(50)
  const why = new Error('the fill failed')
  ac.abort(why)
  await t.rejects(drained, why)
})

t.test('an answer that is not Content-Length framed is refused', async t => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(200) // chunked
    res.end(data.subarray(0, 1000))
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  await t.rejects(reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000)), { name: 'UpstreamCutError', message: /Content-Length/ })
})

t.test('a refusal that is not Content-Length framed keeps its status and message; its connection is not kept', async t => {
  const srv = await server(t, (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' }) // chunked, as a proxy in front of a shard may answer
    res.end(JSON.stringify({ error: { code: 'CDN_ERR_INTERNAL', message: 'injected' } }))
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  const a = await reads.get('/c', {}, d, 0, 206, AbortSignal.timeout(5000))
  t.equal(a.statusCode, 500)
  t.same(JSON.parse(await a.body.text()), { error: { code: 'CDN_ERR_INTERNAL', message: 'injected' } }, 'the chunked body, unframed')
  t.ok(d.buf.every(b => b === 0xee), 'nothing landed in the destination')
  const b = await reads.get('/c', {}, d, 0, 206, AbortSignal.timeout(5000))
  t.equal(b.statusCode, 500)
  await b.body.text()
  t.equal(srv.connections(), 2, 'a new connection for the second request')
})

t.test('a chunked refusal ends at its last chunk however the reads split it, trailers and extensions included', async t => {
  const msg = JSON.stringify({ error: { code: 'CDN_ERR_CORRUPT', message: 'bad copy' } })
  for (const tail of [['0', '\r\n', '\r\n'], ['0;ext=1\r\n', 'x-trailer: y\r\n', '\r\n'], ['0\r', '\n\r', '\n']]) {
    // a raw server: the last chunk and the end of the trailers come in pieces, the connection kept open after
    const server = net.createServer(s => {
      s.on('error', () => {})
      s.once('data', async () => {
        s.write(`HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${msg.length.toString(16)}\r\n${msg}\r\n`)
        for (const piece of tail) { await sleep(30); s.write(piece) }
      })
    })
    const conns: net.Socket[] = []
    server.on('connection', s => conns.push(s))
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
    t.teardown(() => { for (const s of conns) s.destroy(); server.close() })
    const port = (server.address() as AddressInfo).port
    const reads = new ShardReads(`http://127.0.0.1:${port}`, { ...opts, idleTimeoutMs: 5000 })
    t.teardown(() => reads.close())
    const t0 = Date.now()
    const a = await reads.get('/c', {}, dest(), 0, 206, AbortSignal.timeout(10_000))
    t.equal(a.statusCode, 500)
    t.same(JSON.parse(await a.body.text()), JSON.parse(msg), `the refusal's message (${JSON.stringify(tail)})`)
    t.ok(Date.now() - t0 < 2000, 'at its last chunk, not at the idle timeout')
  }
})

t.test('an earlier request\'s abort does not reach a later one on the same kept connection', async t => {
  const srv = await server(t, ranged)
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const first = new AbortController()
  for await (const _ of (await reads.get('/c', {}, dest(), 0, 200, first.signal)).body) { /* drain */ }
  const d = dest()
  const b = await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))
  first.abort(new Error('the first fill ended'))
  for await (const _ of b.body) { /* drain */ }
  t.ok(d.buf.equals(data), 'the second read is whole')
  t.equal(srv.connections(), 1, 'on the kept connection')
})

t.test('a Cancel: a request waiting for its head fails with its reason and its connection closes; one given a cancelled Cancel is never sent; a kept connection does not carry an earlier Cancel', async t => {
  let asked = 0
  let sawClose!: () => void
  const closed = new Promise<void>(r => { sawClose = r })
  const srv = await server(t, (req, res) => {
    asked++
    if (req.url === '/silent') return void req.socket.once('close', sawClose)
    ranged(req, res)
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const c = new Cancel()
  let sent!: () => void
  const arrived = new Promise<void>(r => { sent = r })
  srv.s.once('request', () => sent())
  const waiting = reads.get('/silent', {}, dest(), 0, 200, c)
  await arrived
  const why = new Error('the relay left')
  c.cancel(why)
  await t.rejects(waiting, why)
  t.equal(await Promise.race([closed.then(() => 'closed'), sleep(5000).then(() => 'still open after 5 s')]), 'closed', 'the shard saw the connection close')
  await t.rejects(reads.get('/c', {}, dest(), 0, 200, c), why, 'cancelled before: fails at once')
  t.equal(asked, 1, 'and is never sent')
  // on a kept connection: the first request's Cancel, cancelled after its answer, does not reach the next
  const first = new Cancel()
  for await (const _ of (await reads.get('/c', {}, dest(), 0, 200, first)).body) { /* drain */ }
  const d = dest()
  const before = srv.connections()
  const b = await reads.get('/c', {}, d, 0, 200, new Cancel())
  first.cancel(new Error('the first read ended'))
  for await (const _ of b.body) { /* drain */ }
  t.ok(d.buf.equals(data), 'the second read is whole')
  t.equal(srv.connections(), before, 'on the kept connection the first read used')
})

t.test('a kept connection reset before a byte of its answer: the read goes again on a new connection, once', async t => {
  const seen = new WeakMap<object, number>()
  const srv = await server(t, (req, res) => {
    const n = (seen.get(req.socket) ?? 0) + 1
    seen.set(req.socket, n)
    if (n === 2) return void req.socket.destroy() // the shard closed it as the request came
    ranged(req, res)
  })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  for await (const _ of (await reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ }
  const d = dest()
  for await (const _ of (await reads.get('/c', {}, d, 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ }
  t.ok(d.buf.equals(data))
  t.equal(srv.connections(), 2)
})

t.test('a kept connection whose shard does not answer in time: one timeout, no second request', async t => {
  let n = 0
  const srv = await server(t, (req, res) => { if (n++ === 0) ranged(req, res) })
  const reads = new ShardReads(srv.url, { ...opts, headersTimeoutMs: 200 })
  t.teardown(() => reads.close())
  for await (const _ of (await reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ }
  const t0 = performance.now()
  await t.rejects(reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000)), { code: 'CDN_ERR_UPSTREAM_TIMEOUT' })
  t.ok(performance.now() - t0 < 390, 'after one headersTimeoutMs, not two')
  t.equal(n, 2, 'the shard was asked once more, not twice')
})

t.test('a refusal whose body stalls fails after idleTimeoutMs; bytes past a refusal\'s body drop the connection', async t => {
  const raw = net.createServer(sock => {
    sock.on('error', () => {})
    sock.once('data', d => {
      if (d.toString().startsWith('GET /stall')) sock.write('HTTP/1.1 403 Forbidden\r\ncontent-length: 100\r\n\r\n0123456789')
      else if (d.toString().startsWith('GET /glued')) sock.write('HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n{}JUNK')
      else {
        // the head, then the body with bytes after it in one piece: a read must stop at the body's end
        sock.write('HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n')
        setTimeout(() => sock.write('{}JUNK'), 30)
      }
    })
  })
  let conns = 0
  raw.on('connection', () => { conns++ })
  await new Promise<void>(r => raw.listen(0, '127.0.0.1', r))
  t.teardown(() => raw.close())
  const reads = new ShardReads(`http://127.0.0.1:${(raw.address() as AddressInfo).port}`, { ...opts, idleTimeoutMs: 200 })
  t.teardown(() => reads.close())
  const stalled = await reads.get('/stall', {}, dest(), 0, 200, AbortSignal.timeout(5000))
  t.equal(stalled.statusCode, 403)
  await t.rejects(stalled.body.text(), { code: 'CDN_ERR_UPSTREAM_TIMEOUT' })
  const junk = await reads.get('/junk', {}, dest(), 0, 200, AbortSignal.timeout(5000))
  t.equal(await junk.body.text(), '{}', 'the body is its Content-Length')
  await sleep(100)
  await t.rejects(reads.get('/glued', {}, dest(), 0, 200, AbortSignal.timeout(5000)), { message: /bytes past its response body/ },
    'a new connection (the one that carried bytes after its answer was dropped); bytes glued to an answer refuse it')
  t.equal(conns, 3)
})

t.test('a 200 where a range\'s 206 was asked for: refused before a byte lands', async t => {
  const srv = await server(t, (_req, res) => { res.writeHead(200, { 'content-length': SIZE }); res.end(data) })
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  const d = dest()
  await t.rejects(reads.get('/c', { range: 'bytes=65536-131071' }, d, 65536, 206, AbortSignal.timeout(5000)), { name: 'UpstreamCutError', message: /200 where 206/ })
  t.ok(d.buf.every(b => b === 0xee), 'nothing landed')
})

t.test('a kept connection the shard closed is never used again, and the new one is kept in its place', async t => {
  const srv = await server(t, ranged)
  const reads = new ShardReads(srv.url, { ...opts, connections: 1 })
  t.teardown(() => reads.close())
  const read = async () => { for await (const _ of (await reads.get('/c', {}, dest(), 0, 200, AbortSignal.timeout(5000))).body) { /* drain */ } }
  await read()
  srv.s.closeIdleConnections()
  await sleep(100)
  await read() // a new connection, kept: the closed one no longer holds the only idle place
  await read()
  t.equal(srv.connections(), 2)
})

t.test('warm: a connection opened ahead carries the next request; one left unused is closed before a server would time it out', async t => {
  const srv = await server(t, ranged)
  const reads = new ShardReads(srv.url, opts)
  t.teardown(() => reads.close())
  reads.warm()
  reads.warm()
  const d = dest()
  const a = await reads.get('/c', { range: 'bytes=0-99' }, d, 0, 206, AbortSignal.timeout(5000))
  for await (const v of a.body) void v
  t.equal(srv.connections(), 1, 'one connection: opened ahead (once), then used')
  // the kept connection is idle now: warm opens none more
  reads.warm()
  t.equal(srv.connections(), 1)

  const other = await server(t, ranged)
  const ahead = new ShardReads(other.url, opts)
  t.teardown(() => ahead.close())
  ahead.warm()
  const deadline = Date.now() + 5000
  while ((other.connections() === 0 || !other.sockets[0]!.destroyed) && Date.now() < deadline) await sleep(20)
  t.equal(other.connections(), 1)
  t.ok(other.sockets[0]!.destroyed, 'the unused one was closed by the reader')
  const b = await ahead.get('/c', { range: 'bytes=0-99' }, dest(), 0, 206, AbortSignal.timeout(5000))
  for await (const v of b.body) void v
  t.equal(b.statusCode, 206, 'and the next request opened a new one')
})
