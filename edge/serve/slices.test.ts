import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes, randomFillSync } from 'node:crypto'
import { PROBE_BYTES, SliceQueue } from './slices.js'
import { sender } from './send.js'
import { zeroCopyChunk } from '../../lib/net/zero-copy.js'

/**
 * Large ended responses share the loop: a slice per response per pass, a
 * byte budget per turn, the first slice at once. Order is checked by what the
 * queue wrote, turn by turn, never by timing.
 */
const KiB = 1024

interface Served { server: http.Server; url: string; log: string[] }

/** A server whose handler ends each response with `bodies[i]` through `end`, logging every write as `<i>:<bytes>`. */
async function serve(t: { teardown(fn: () => void): void }, bodies: Buffer[], end: (res: http.ServerResponse, piece: Buffer) => void, expect: number): Promise<Served & { all: Promise<void> }> {
  const log: string[] = []
  let n = 0
  let arrived!: () => void
  const all = new Promise<void>(resolve => { arrived = resolve })
  const waiting: (() => void)[] = []
  const server = http.createServer((req, res) => {
    const i = Number(req.url!.slice(1))
    const w = res.write.bind(res)
    const e = res.end.bind(res) as (chunk: Buffer, cb?: () => void) => http.ServerResponse
    res.write = ((chunk: Buffer, ...rest: unknown[]) => { log.push(`${i}:${chunk.length}`); return (w as (...a: unknown[]) => boolean)(chunk, ...rest) }) as typeof res.write
    res.end = ((chunk: Buffer, ...rest: unknown[]) => { log.push(`${i}:${chunk.length}:end`); return (e as (...a: unknown[]) => http.ServerResponse)(chunk, ...rest) }) as typeof res.end
    res.writeHead(200, { 'content-length': bodies[i]!.length })
    // a barrier: every request is answered in the same turn, once all have arrived
    waiting.push(() => end(res, bodies[i]!))
    if (++n === expect) { arrived(); for (const go of waiting) go() }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { server, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, log, all }
}

async function fetchAll(url: string, count: number): Promise<Buffer[]> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: count })
  try {
    return await Promise.all(Array.from({ length: count }, (_, i) => new Promise<Buffer>((resolve, reject) => {
      http.get(`${url}/${i}`, { agent }, res => {
        const parts: Buffer[] = []
        res.on('data', d => parts.push(d))
        res.on('end', () => resolve(Buffer.concat(parts)))
        res.on('error', reject)
      }).on('error', reject)
    })))
  } finally {
    agent.destroy()
  }
}

t.test('large responses go out a slice per response per pass, round robin, within a budget per turn', async t => {
  const bodies = [randomBytes(64 * KiB), randomBytes(64 * KiB), randomBytes(8 * KiB)]
  const q = new SliceQueue({ sliceBytes: 16 * KiB, turnBytes: 32 * KiB })
  const s = await serve(t, bodies, (res, piece) => q.end(res, piece), 3)
  const got = await fetchAll(s.url, 3)
  for (let i = 0; i < 3; i++) t.ok(got[i]!.equals(bodies[i]!), `response ${i}: every byte, in order`)
  // the poll that read the requests spends a turn's budget on the two large first slices; the small piece waits a turn
  t.same(s.log.slice(0, 2).sort(), ['0:16384', '1:16384'], 'first slices of the large responses go out in the poll that read them')
  t.ok(s.log.includes('2:8192:end'), 'the small piece is ended in one write, in the next turn')
  const rest = s.log.slice(2).filter(x => !x.startsWith('2:')).map(x => x.split(':')[0])
  t.equal(rest.length, 6, 'six more slices, each through the queue')
  // round robin: the two large responses alternate, never two slices of one in a row
  for (let k = 1; k < rest.length; k++) t.not(rest[k], rest[k - 1], `queued slice ${k + 1} is not the same response as the one before it`)
  t.ok(q.turns >= 3, `104 KiB queued at 32 KiB a turn (a turn may overshoot by its last slice): at least 3 turns (${q.turns})`)
  t.equal(q.size, 0, 'nothing left queued')
})

t.test("first slices beyond a turn's budget wait for the next turn", async t => {
  const bodies = [0, 1, 2, 3].map(() => randomBytes(32 * KiB))
  const q = new SliceQueue({ sliceBytes: 16 * KiB, turnBytes: 32 * KiB })
  const turnAt: number[] = []
  const s = await serve(t, bodies, (res, piece) => { q.end(res, piece); turnAt.push(q.turns) }, 4)
  const got = await fetchAll(s.url, 4)
  for (let i = 0; i < 4; i++) t.ok(got[i]!.equals(bodies[i]!), `response ${i}: every byte, in order`)
  // four requests answered in one poll: two first slices fit its 32 KiB, the other two are queued whole
  t.equal(s.log.length, 8, 'eight slices in all')
  const firstTurn = s.log.slice(0, 2)
  t.equal(firstTurn.length, 2)
  const started = new Set(firstTurn.map(x => x.split(':')[0]))
  t.equal(started.size, 2, `the poll wrote the first slices of two responses (${firstTurn.join(', ')}), then stopped`)
  const third = s.log[2]!.split(':')[0]!
  t.ok(started.has(third), `the first turn goes on with a response already started (${s.log[2]}), round robin from the head`)
  t.equal(q.size, 0, 'nothing left queued')
})

t.test('a piece of at most one slice is ended in one write, as before', async t => {
  const bodies = [randomBytes(16 * KiB)]
  const q = new SliceQueue({ sliceBytes: 16 * KiB, turnBytes: 64 * KiB })
  const s = await serve(t, bodies, (res, piece) => q.end(res, piece), 1)
  const [got] = await fetchAll(s.url, 1)
  t.ok(got!.equals(bodies[0]!))
  t.same(s.log, ['0:16384:end'])
  t.equal(q.size, 0, 'nothing queued')
})

t.test("a response whose player stops reading leaves the turns until its 'drain', and the others go on", async t => {
  const big = randomBytes(4 * 1024 * KiB)
  const small = randomBytes(512 * KiB)
  const q = new SliceQueue({ sliceBytes: 64 * KiB, turnBytes: 256 * KiB })
  const s = await serve(t, [big, small], (res, piece) => q.end(res, piece), 2)
  const port = Number(new URL(s.url).port)
  // player 0 sends its request and never reads; player 1 reads normally
  const stalled = net.connect(port, '127.0.0.1')
  await once(stalled, 'connect')
  stalled.pause()
  t.teardown(() => stalled.destroy())
  stalled.write('GET /0 HTTP/1.1\r\nhost: x\r\n\r\n')
  const body = await new Promise<Buffer>((resolve, reject) => {
    http.get(`${s.url}/1`, { agent: false }, res => {
      const parts: Buffer[] = []
      res.on('data', d => parts.push(d))
      res.on('end', () => resolve(Buffer.concat(parts)))
    }).on('error', reject)
  })
  t.ok(body.equals(small), 'the reading player got all of its bytes while the other stalled')
  t.ok(q.drainWaits >= 1, `the stalled response waited for 'drain' outside the turns (${q.drainWaits})`)
  // once it reads again it gets every byte
  const parts: Buffer[] = []
  stalled.on('data', d => parts.push(d))
  stalled.resume()
  const need = big.length
  await new Promise<void>(resolve => {
    const check = () => {
      const raw = Buffer.concat(parts)
      const at = raw.indexOf('\r\n\r\n')
      if (at >= 0 && raw.length - at - 4 >= need) { stalled.off('data', check); resolve() }
    }
    stalled.on('data', check)
  })
  const raw = Buffer.concat(parts)
  t.ok(raw.subarray(raw.indexOf('\r\n\r\n') + 4).equals(big), 'the stalled player gets every byte once it reads')
})

t.test("sender's end slices large pieces and still cuts a player that reads nothing for stallMs", async t => {
  let stalls = 0
  let cut!: () => void
  const wasCut = new Promise<void>(resolve => { cut = resolve })
  const send = sender(200, { stalled: () => { stalls++; cut() }, blocked: () => {} }, { sliceBytes: 64 * KiB, turnBytes: 256 * KiB })
  const big = randomBytes(8 * 1024 * KiB)
  const s = await serve(t, [big], (res, piece) => send.end(res, piece), 1)
  const sock = net.connect(Number(new URL(s.url).port), '127.0.0.1')
  await once(sock, 'connect')
  sock.pause()
  t.teardown(() => sock.destroy())
  sock.write('GET /0 HTTP/1.1\r\nhost: x\r\n\r\n')
  await wasCut
  t.equal(stalls, 1, 'cut once, counted as a stall')
  t.equal(send.pending(), 0, 'nothing held for it')
  t.ok(s.log.length > 1, `sent in slices (${s.log.length} writes before the cut)`)
})

t.test("sender forgets a finished response within a sweep, long before stallMs", async t => {
  // held for as long as a sweep's period, each finished response's objects outlive a young-generation GC (send.ts)
  const send = sender(30_000, { stalled: () => t.fail('nothing stalls'), blocked: () => {} })
  const bodies = Array.from({ length: 20 }, (_, i) => randomBytes(i % 2 ? 4 * KiB : 2 * 1024 * KiB))
  let first: number | undefined
  let heldAtEnd = 0
  const s = await serve(t, bodies, (res, piece) => {
    first ??= performance.now()
    send.end(res, piece)
    heldAtEnd = Math.max(heldAtEnd, send.held())
  }, bodies.length)
  const got = await fetchAll(s.url, bodies.length)
  t.ok(got.every((b, i) => b.equals(bodies[i]!)), 'every body arrives whole')
  t.ok(heldAtEnd > 0, `ended responses are watched (${heldAtEnd} at once)`)
  t.equal(send.pending(), 0, 'none is waiting for its player')
  // the bound tells the sweep's period: one of a second or more (stallMs / 4 is 7.5 s here) could not forget them in 900 ms
  while (send.held() > 0 && performance.now() - first! < 900) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(send.held(), 0, `finished responses forgotten (${(performance.now() - first!).toFixed(0)} ms after the first was watched)`)
})

for (const acceptTurnBytes of [undefined, 512]) {
  t.test(`a turn after an accepted connection writes one slice (acceptTurnBytes ${acceptTurnBytes ?? 'unset'}); the next turn has its whole budget again`, async t => {
    // slices far below the socket's highWaterMark, so no write waits for 'drain' and a turn's count is its budget
    const body = randomBytes(16 * KiB)
    const q = new SliceQueue({ sliceBytes: KiB, turnBytes: 4 * KiB, ...(acceptTurnBytes === undefined ? {} : { acceptTurnBytes }) })
    const wroteIn: number[] = []
    const s = await serve(t, [body], (res, piece) => {
      const w = res.write.bind(res) as (...a: unknown[]) => boolean
      res.write = ((...a: unknown[]) => { wroteIn.push(q.turns); return w(...a) }) as typeof res.write
      q.end(res, piece)
      // as the edge's 'connection' hook does when libuv accepts in this poll
      q.accepted()
    }, 1)
    const [got] = await fetchAll(s.url, 1)
    t.ok(got!.equals(body), 'every byte, in order')
    const perTurn = new Map<number, number>()
    for (const turn of wroteIn) perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1)
    // turn 0 is the poll that read the request (its first slice); turn 1 follows the accept; turn 2 does not
    t.equal(perTurn.get(0), 1, 'the first slice goes out with the headers')
    t.equal(perTurn.get(1), 1, 'the turn after the accept writes one whole slice (1 KiB), not the 4 KiB budget')
    t.equal(perTurn.get(2), 4, 'the next turn, with no accept before it, writes its whole budget')
    t.equal(q.accepts, 1)
  })
}

t.test('first slices keep their budget after an accept: only the queue\'s turn is short', async t => {
  const bodies = [0, 1, 2].map(() => randomBytes(2 * KiB))
  const q = new SliceQueue({ sliceBytes: KiB, turnBytes: 4 * KiB })
  const wroteIn: number[] = []
  let first = true
  const s = await serve(t, bodies, (res, piece) => {
    const count = (f: (...a: unknown[]) => unknown) => (...a: unknown[]) => { wroteIn.push(q.turns); return f(...a) }
    res.write = count(res.write.bind(res) as (...a: unknown[]) => unknown) as typeof res.write
    res.end = count(res.end.bind(res) as (...a: unknown[]) => unknown) as typeof res.end
    // a connection accepted in the poll that read these requests
    if (first) { first = false; q.accepted() }
    q.end(res, piece)
  }, 3)
  const got = await fetchAll(s.url, 3)
  for (let i = 0; i < 3; i++) t.ok(got[i]!.equals(bodies[i]!), `response ${i}: every byte, in order`)
  const perTurn = new Map<number, number>()
  for (const turn of wroteIn) perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1)
  t.equal(perTurn.get(0), 3, 'the poll writes every first slice within its budget: a request read while players connect has its first byte at once')
  t.equal(perTurn.get(1), 1, 'the turn after the accept writes one slice')
  t.equal(perTurn.get(2), 2, 'the next turn writes the two slices left')
})

t.test('an accept with nothing queued: a turn still runs and ends the short turn, so a later poll\'s answers are not held to it', async t => {
  const body = randomBytes(16 * KiB)
  const q = new SliceQueue({ sliceBytes: KiB, turnBytes: 4 * KiB })
  q.accepted()
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  t.equal(q.turns, 1, 'the accept scheduled a turn of its own')
  const wroteIn: number[] = []
  const s = await serve(t, [body], (res, piece) => {
    const w = res.write.bind(res) as (...a: unknown[]) => boolean
    res.write = ((...a: unknown[]) => { wroteIn.push(q.turns); return w(...a) }) as typeof res.write
    q.end(res, piece)
  }, 1)
  const [got] = await fetchAll(s.url, 1)
  t.ok(got!.equals(body), 'every byte, in order')
  const after = wroteIn.filter(turn => turn === 2).length
  t.equal(after, 4, `the first turn after the request writes its whole budget (${after} slices)`)
})

t.test('acceptTurnBytes is checked', async t => {
  t.throws(() => new SliceQueue({ sliceBytes: 16 * KiB, turnBytes: 64 * KiB, acceptTurnBytes: 0 }), RangeError)
  t.throws(() => new SliceQueue({ sliceBytes: 16 * KiB, turnBytes: 64 * KiB, acceptTurnBytes: 128 * KiB }), RangeError)
})

// zero-copy slices (lib/net/zero-copy.ts): bytes spliced into the socket bypass Node, so what the player gets is checked whole

interface Got { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** one keep-alive connection, requests in order; `slowMs` pauses the reader after each read (the socket fills) */
async function getAll(url: string, reqs: Array<{ path: string; method?: string }>, slowMs = 0): Promise<Got[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const out: Got[] = []
    for (const r of reqs) {
      out.push(await new Promise<Got>((resolve, reject) => {
        http.request(`${url}${r.path}`, { agent, method: r.method ?? 'GET' }, res => {
          const parts: Buffer[] = []
          res.on('data', d => {
            parts.push(d)
            if (slowMs > 0) { res.pause(); setTimeout(() => res.resume(), slowMs) }
          })
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }))
          res.on('error', reject)
        }).on('error', reject).end()
      }))
    }
    return out
  } finally {
    agent.destroy()
  }
}

async function zcServer(t: { teardown(fn: () => void): void }, q: SliceQueue, bodies: Buffer[], opts: { chunked?: boolean } = {}): Promise<string> {
  const server = http.createServer((req, res) => {
    const body = bodies[Number(req.url!.slice(1))]!
    // as the edge does: headers set, sent with the first write
    res.statusCode = 200
    if (!opts.chunked) res.setHeader('content-length', body.length)
    q.end(res, body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

t.test('zero-copy memory is spliced, and every player gets every byte in order, fast or slow', async t => {
  const q = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB, zeroCopy: true })
  const bodies = [0, 1, 2].map(() => randomFillSync(zeroCopyChunk(6 * 1024 * KiB)))
  const url = await zcServer(t, q, bodies)
  const [fast, slow] = await Promise.all([
    getAll(url, [{ path: '/0' }, { path: '/1' }, { path: '/2' }]),
    getAll(url, [{ path: '/2' }, { path: '/0' }], 2),
  ])
  fast!.forEach((g, i) => t.ok(g.body.equals(bodies[i]!), `fast player, body ${i}`))
  t.ok(slow![0]!.body.equals(bodies[2]!) && slow![1]!.body.equals(bodies[0]!), 'slow player, both bodies, back to back on one connection')
  const total = 5 * 6 * 1024 * KiB
  t.equal(q.splicedBytes + q.probeBytes, total, 'every byte went out spliced or as a probe')
  t.ok(q.splicedBytes > 0.8 * total, `most were spliced (${q.splicedBytes} of ${total})`)
  t.ok(q.probeBytes > 5 * PROBE_BYTES, `sockets were found full and probed (${q.probeBytes} bytes copied, more than the 5 first probes)`)
})

t.test('zero-copy: two requests pipelined in one write get two whole responses, in order', async t => {
  const q = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB, zeroCopy: true })
  const bodies = [0, 1].map(() => randomFillSync(zeroCopyChunk(3 * 1024 * KiB)))
  const url = new URL(await zcServer(t, q, bodies))
  const sock = net.connect(Number(url.port), url.hostname)
  t.teardown(() => sock.destroy())
  await once(sock, 'connect')
  sock.write('GET /0 HTTP/1.1\r\nhost: x\r\n\r\nGET /1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
  const parts: Buffer[] = []
  sock.on('data', (d: Buffer) => parts.push(d))
  await once(sock, 'end')
  const all = Buffer.concat(parts)
  const head0 = all.indexOf('\r\n\r\n') + 4
  const len = bodies[0]!.length
  t.ok(all.subarray(head0, head0 + len).equals(bodies[0]!), 'the first body, whole')
  const rest = all.subarray(head0 + len)
  t.match(rest.subarray(0, 15).toString('latin1'), /^HTTP\/1\.1 200 /, 'the second response starts right after it')
  const head1 = rest.indexOf('\r\n\r\n') + 4
  t.ok(rest.subarray(head1).equals(bodies[1]!), 'the second body, whole, and nothing after')
})

t.test('zero-copy: a player that leaves mid-response is dropped; the others finish', async t => {
  const q = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB, zeroCopy: true })
  const body = randomFillSync(zeroCopyChunk(16 * 1024 * KiB))
  const url = new URL(await zcServer(t, q, [body]))
  const sock = net.connect(Number(url.port), url.hostname)
  await once(sock, 'connect')
  sock.write('GET /0 HTTP/1.1\r\nhost: x\r\n\r\n')
  await once(sock, 'data')
  sock.resetAndDestroy()
  const [g] = await getAll(`http://${url.host}`, [{ path: '/0' }])
  t.ok(g!.body.equals(body), 'the next player gets its body whole')
  t.equal(q.size, 0, 'nothing is left queued for the one that left')
  t.equal(q.refused, undefined, 'its reset was not taken for splicing being refused')
})

t.test('not spliced: ordinary memory, HEAD, and a body without a length (chunked framing)', async t => {
  const q = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB, zeroCopy: true })
  const zc = randomFillSync(zeroCopyChunk(2 * 1024 * KiB))
  const plain = randomBytes(2 * 1024 * KiB)
  const url = await zcServer(t, q, [zc, plain])
  const got = await getAll(url, [{ path: '/0', method: 'HEAD' }, { path: '/1' }, { path: '/0', method: 'HEAD' }])
  t.equal(got[0]!.body.length, 0, 'HEAD: no body')
  t.ok(got[1]!.body.equals(plain), 'ordinary memory: copied, whole')
  t.equal(q.splicedBytes, 0, 'nothing spliced for HEAD or ordinary memory')
  const after = await getAll(url, [{ path: '/0', method: 'HEAD' }, { path: '/0' }])
  t.ok(after[1]!.body.equals(zc), 'a GET after a HEAD on the same connection is whole (no stray body bytes before it)')
  t.ok(q.splicedBytes > 0, 'and spliced')

  const qc = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB, zeroCopy: true })
  const chunkedUrl = await zcServer(t, qc, [zc], { chunked: true })
  const [c] = await getAll(chunkedUrl, [{ path: '/0' }, { path: '/0' }])
  t.equal(c!.headers['transfer-encoding'], 'chunked')
  t.ok(c!.body.equals(zc), 'chunked: whole')
  t.equal(qc.splicedBytes, 0, 'chunked: nothing spliced')
})

t.test('zeroCopy off: zero-copy memory is copied like any other', async t => {
  const q = new SliceQueue({ sliceBytes: 256 * KiB, turnBytes: 1024 * KiB })
  const zc = randomFillSync(zeroCopyChunk(2 * 1024 * KiB))
  const url = await zcServer(t, q, [zc])
  const [g] = await getAll(url, [{ path: '/0' }])
  t.ok(g!.body.equals(zc))
  t.equal(q.splicedBytes + q.probeBytes, 0)
})
