import t from 'tap'
import { fresh, untilThreadsServe } from '../helpers/fresh.js'
import http from 'node:http'
import { connect } from 'node:net'
import { KeyRing, signToken } from '../../lib/security/tokens.js'
import { FakeUpstream } from '../helpers/fake-upstream.js'
import { titleBytes } from '../helpers/titles.js'
import { get, metric, startTestEdge, until } from '../helpers/edge.js'
import { logSink } from '../helpers/origin.js'
import { createLogger } from '../../lib/logger.js'

/**
 * edge.serveThreads: threads that answer RAM hits on the edge's own port and
 * relay the rest to the main thread. Which thread accepts a connection is the
 * kernel's choice, so every check here runs over many fresh connections (each
 * may land on either) and asserts on what both must do; the counter of
 * requests the threads served shows that they did serve.
 */
const CS = 128 * 1024
const TOKEN_KEYS = 'k1:serve-threads-test-key-0123456789'


async function warm(url: string, size: number): Promise<void> {
  const r = await get(url)
  if (r.status !== 200 || r.body.length !== size) throw new Error(`warming ${url}: ${r.status}, ${r.body.length} bytes`)
}

t.test('hits over many connections are byte-exact with every header, and the threads serve some of them', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(4 * CS + 1000, 'threads')
  await up.addTitle('th', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0 })
  const url = `${edge.url}/v1/content/th`
  await warm(url, body.length)
  await until(() => edge.cache.ram.stats().entries === 5, 'every chunk in RAM')
  const upstreamBefore = up.requests('th')

  const ranges: [number, number][] = []
  for (let i = 0; i < 120; i++) {
    const s = (i * 7919 * 31) % (body.length - 70_000)
    ranges.push(i % 3 === 0 ? [s, s] : [s, Math.min(s + 65_000, Math.floor(s / CS) * CS + CS - 1)])
  }
  const got = await Promise.all(ranges.map(([s, e]) => fresh(url, { range: `bytes=${s}-${e}` })))
  got.forEach((r, i) => {
    const [s, e] = ranges[i]!
    if (r.status !== 206 || !r.body.equals(body.subarray(s, e + 1))) t.fail(`bytes=${s}-${e}: ${r.status}, ${r.body.length} bytes`)
    if (r.headers['content-range'] !== `bytes ${s}-${e}/${body.length}`) t.fail(`bytes=${s}-${e}: content-range ${r.headers['content-range']}`)
  })
  const h = got[1]!.headers
  t.match(h, { 'accept-ranges': 'bytes', 'access-control-allow-origin': '*', etag: /^"[0-9a-f]{64}"$/, 'cache-control': /immutable/ })
  t.ok(h['x-request-id'] && h['last-modified'] && h['content-type'], 'request id, Last-Modified, Content-Type')
  t.equal(up.requests('th'), upstreamBefore, 'no upstream request for a hit')

  // every hit counted once, wherever it was served (the warm-up read was the one miss, then ram hits)
  await until(async () => await metric(edge.url, 'reelcdn_edge_requests_total', { result: 'ram_hit' }) === 120, '120 RAM hits counted')
  await until(async () => await metric(edge.url, 'reelcdn_http_requests_total', { route: '/v1/content/:id', method: 'GET', status: '2xx' }) === 121,
    '121 answers counted')
  t.equal(await metric(edge.url, 'reelcdn_edge_player_responses_total', { kind: 'range' }), 120)
  const served = await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'served' })
  t.ok(served <= 120, `the threads served ${served} of 120`)
  // and some were served by a thread (more bursts if the kernel gave all 120 connections to the main thread)
  await untilThreadsServe(edge.url, async () => {
    const r = await fresh(url, { range: 'bytes=1000-1999' })
    if (!r.body.equals(body.subarray(1000, 2000))) t.fail('a later hit had other bytes')
  })
  t.pass('the threads served hits')
})

t.test('what a thread does not serve from RAM is relayed: misses, bodyless answers, errors, admin routes, /metrics', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(3 * CS, 'relay')
  await up.addTitle('rl', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.readaheadChunks': 0 }, { REELCDN_EDGE_ADMIN_TOKEN: 'sesame' })
  const url = `${edge.url}/v1/content/rl`
  for (let i = 0; i < 12; i++) {
    // cross-chunk ranges and whole-title reads go through the main thread, hit or miss
    const s = (i * 40_000) % (body.length - 200_000)
    const r = await fresh(url, { range: `bytes=${s}-${s + 199_999}` })
    t.equal(r.status, 206)
    t.ok(r.body.equals(body.subarray(s, s + 200_000)), `bytes=${s}-${s + 199_999}`)
  }
  const whole = await fresh(url)
  t.equal(whole.status, 200)
  t.ok(whole.body.equals(body))
  for (let i = 0; i < 10; i++) {
    const head = await fresh(url, {}, 'HEAD')
    t.equal(head.status, 200)
    t.equal(head.headers['content-length'], String(body.length))
    t.equal(head.body.length, 0)
    const etag = head.headers.etag!
    t.equal((await fresh(url, { 'if-none-match': etag })).status, 304)
    const r416 = await fresh(url, { range: `bytes=${body.length + 5}-` })
    t.equal(r416.status, 416)
    t.equal(r416.headers['content-range'], `bytes */${body.length}`)
    const missing = await fresh(`${edge.url}/v1/content/nope`)
    t.equal(missing.status, 404)
    t.equal(JSON.parse(missing.body.toString()).error.code, 'CDN_ERR_NOT_FOUND')
    t.equal((await fresh(`${edge.url}/v1/cache`)).status, 401)
    const opts = await fresh(url, { origin: 'https://player.example', 'access-control-request-method': 'GET' }, 'OPTIONS')
    t.equal(opts.status, 204)
  }
  // what the main thread accepts from a client, it accepts relayed: no Host (HTTP/1.0), header fields up to the limit
  const port = Number(new URL(edge.url).port)
  for (let i = 0; i < 10; i++) {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => s.write('GET /v1/content/nope HTTP/1.0\r\n\r\n'))
      let text = ''
      s.on('data', (c: Buffer) => { text += c.toString() })
      s.on('end', () => resolve(text))
      s.on('error', reject)
    })
    t.match(raw, /^HTTP\/1\.1 404 /, 'HTTP/1.0 without Host: 404, as from the main thread')
    const many: Record<string, string> = {}
    for (let f = 0; f < 95; f++) many[`x-field-${f}`] = 'v'.repeat(100)
    t.equal((await fresh(`${edge.url}/v1/content/nope`, many)).status, 404, '95 more header fields: still under http.maxHeaders')
    const long = await fresh(`${url}?pad=${'x'.repeat(5000)}`)
    t.equal(long.status, 414, 'a request target over http.maxUrlBytes: 414, wherever it lands')
    t.equal(JSON.parse(long.body.toString()).error.code, 'CDN_ERR_REQUEST_TOO_LARGE')
    t.ok(long.headers['x-request-id'])
  }
  const m = await fresh(`${edge.url}/metrics`)
  t.equal(m.status, 200)
  t.match(m.body.toString(), /reelcdn_edge_requests_total/)
  const status = await fresh(`${edge.url}/v1/cache`, { authorization: 'Bearer sesame' })
  t.equal(status.status, 200)
  t.equal(JSON.parse(status.body.toString()).ram.entries, 3)
  t.ok(await metric(edge.url, 'reelcdn_edge_serve_thread_requests_total', { outcome: 'relayed' }) > 0, 'some requests were relayed')
})

t.test('with log.requests, a request a thread answers is logged by the main thread, one line, its token redacted', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(CS, 'logged')
  await up.addTitle('lg', body, { chunkSize: CS })
  const sink = logSink()
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'log.requests': true }, {}, createLogger('edge', 'info', sink))
  const url = `${edge.url}/v1/content/lg?token=sekrit-value`
  await warm(url, body.length)
  await until(() => edge.cache.ram.stats().entries === 1, 'the chunk in RAM')
  const ids: string[] = []
  await untilThreadsServe(edge.url, () => Promise.all(Array.from({ length: 20 }, () => {
    const id = `req-${ids.length}`
    ids.push(id)
    return fresh(url, { range: 'bytes=5-9', 'x-request-id': id })
  })))
  const requestLines = () => sink.lines.filter(l => l.msg === 'request' && ids.includes(l.reqId))
  await until(() => requestLines().length === ids.length, `a line for each of the ${ids.length} requests`)
  t.ok(requestLines().some(l => l.thread === true), 'some were answered, and logged, from a thread')
  for (const l of requestLines()) t.match(l, { method: 'GET', status: 206, url: '/v1/content/lg?token=[redacted]', finished: true, remote: '127.0.0.1' })
  t.notOk(sink.lines.some(l => JSON.stringify(l).includes('sekrit')), 'the token never reaches a log line')
})

t.test('a purge answers only once no thread serves the title any more', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const v1 = titleBytes(2 * CS, 'p-v1')
  const v2 = titleBytes(2 * CS, 'p-v2')
  await up.addTitle('pg', v1, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.metaTtlMs': 3600000 }, { REELCDN_EDGE_ADMIN_TOKEN: 'sesame' })
  const url = `${edge.url}/v1/content/pg`
  await warm(url, v1.length)
  await until(() => edge.cache.ram.stats().entries === 2, 'both chunks in RAM')
  await up.removeTitle('pg')
  await up.addTitle('pg', v2, { chunkSize: CS, version: 'v2' })
  await untilThreadsServe(edge.url, async () => {
    const before = await Promise.all(Array.from({ length: 20 }, () => fresh(url, { range: 'bytes=10-99' })))
    if (!before.every(r => r.body.equals(v1.subarray(10, 100)))) t.fail('before the purge: not the cached version')
  })
  t.equal((await fresh(`${edge.url}/v1/cache/pg`, { authorization: 'Bearer sesame' }, 'DELETE')).status, 200)
  const after = await Promise.all(Array.from({ length: 20 }, () => fresh(url, { range: 'bytes=10-99' })))
  t.ok(after.every(r => r.status === 206 && r.body.equals(v2.subarray(10, 100))), 'right after it: the new version, from every thread')
})

t.test('tokens: checked by whichever thread serves; a relayed request keeps its client address, a client cannot claim another', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(2 * CS, 'tok')
  await up.addTitle('tk', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.requireToken': true }, { REELCDN_TOKEN_KEYS: TOKEN_KEYS })
  const ring = KeyRing.parse(TOKEN_KEYS)
  const exp = Math.floor(Date.now() / 1000) + 600
  const good = signToken(ring, { cid: 'tk', exp, net: '127.0.0.0/8' })
  const elsewhere = signToken(ring, { cid: 'tk', exp, net: '10.0.0.0/8' })
  const url = `${edge.url}/v1/content/tk`
  await warm(`${url}?token=${good}`, body.length)
  await until(() => edge.cache.ram.stats().entries === 2, 'both chunks in RAM')
  await untilThreadsServe(edge.url, () => fresh(`${url}?token=${good}`, { range: 'bytes=100-199' }))
  for (let i = 0; i < 16; i++) {
    const ok = await fresh(`${url}?token=${good}`, { range: 'bytes=100-199' })
    t.equal(ok.status, 206)
    t.ok(ok.body.equals(body.subarray(100, 200)))
    t.equal((await fresh(url, { range: 'bytes=100-199' })).status, 403, 'no token')
    // the relay's own headers, sent by a client, are dropped or overwritten: the address stays the real one
    const spoofed = await fresh(`${url}?token=${elsewhere}`, { range: 'bytes=100-199', 'x-reelcdn-peer': '10.1.2.3', 'x-reelcdn-relay': 'guess' })
    t.equal(spoofed.status, 403)
    t.match(JSON.parse(spoofed.body.toString()).error.message, /outside the token's network 10\.0\.0\.0\/8/)
  }
})

t.test('a thread stops serving a title when its metadata expires: a title deleted upstream is a 404 within the TTL', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(CS, 'expiring')
  await up.addTitle('ex', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'edge.metaTtlMs': 1500, 'edge.metaNegativeTtlMs': 0 })
  const url = `${edge.url}/v1/content/ex`
  await warm(url, body.length)
  await until(() => edge.cache.ram.stats().entries === 1, 'the chunk in RAM')
  await untilThreadsServe(edge.url, () => Promise.all(Array.from({ length: 10 }, () => fresh(url, { range: 'bytes=0-9' }))))
  await up.removeTitle('ex')
  await new Promise(r => setTimeout(r, 1600))
  // the chunk is still in RAM (and in every thread's copy): only the metadata's expiry stops it
  t.equal(edge.cache.ram.stats().entries, 1)
  const after = await Promise.all(Array.from({ length: 30 }, () => fresh(url, { range: 'bytes=0-9' })))
  t.same(after.map(r => r.status), after.map(() => 404), 'every connection, whichever thread took it')
})

t.test('close under load: answers in flight and requests on kept-alive connections finish or are refused, never a 502', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(4 * CS, 'draining')
  await up.addTitle('dr', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 1, 'http.shutdownGraceMs': 2000 })
  const url = `${edge.url}/v1/content/dr`
  await warm(url, body.length)
  await until(() => edge.cache.ram.stats().entries === 4, 'every chunk in RAM')
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const statuses: (number | string)[] = []
  let stop = false
  // 16 players reading ranges in a loop (hits and, across chunks, relayed reads) on kept-alive connections
  const players = Array.from({ length: 16 }, async (_, p) => {
    for (let i = 0; !stop; i++) {
      const s = ((p * 97 + i * 131_071) % (body.length - 300_000))
      const got = await new Promise<number | string>(resolve => {
        const req = http.request(url, { agent, headers: { range: `bytes=${s}-${s + 199_999}` } }, res => {
          const parts: Buffer[] = []
          res.on('data', (c: Buffer) => parts.push(c))
          res.on('end', () => resolve(res.statusCode === 206 && !Buffer.concat(parts).equals(body.subarray(s, s + 200_000)) ? 'wrong bytes' : res.statusCode!))
          res.on('error', () => resolve('cut'))
        })
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
        req.end()
      })
      statuses.push(got)
      if (typeof got === 'string') break // refused or cut at shutdown: this player is done
    }
  })
  // close once the players are in full swing (a barrier: a fixed wait saw 16 answers or fewer on a loaded machine)
  await until(() => statuses.filter(x => x === 206).length >= 32, 'answers before the close', 30_000)
  await edge.close()
  stop = true
  await Promise.all(players)
  const counts: Record<string, number> = {}
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1
  t.ok((counts[206] ?? 0) > 16, `answers before the close: ${JSON.stringify(counts)}`)
  t.notOk(counts[502] || counts['wrong bytes'], `no 502 and no wrong bytes: ${JSON.stringify(counts)}`)
  for (const k of Object.keys(counts)) if (!['206', 'ECONNREFUSED', 'ECONNRESET', 'cut', 'EPIPE'].includes(k)) t.fail(`unexpected outcome ${k}`)
})

t.test('close: answers in flight finish, then the port is closed', async t => {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const body = titleBytes(2 * CS, 'close')
  await up.addTitle('cl', body, { chunkSize: CS })
  const edge = await startTestEdge(t, up, { 'edge.serveThreads': 2 })
  const url = `${edge.url}/v1/content/cl`
  await warm(url, body.length)
  const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => fresh(url, { range: `bytes=${i * 1000}-${i * 1000 + 999}` })))
  t.ok(rs.every((r, i) => r.status === 206 && r.body.equals(body.subarray(i * 1000, i * 1000 + 1000))))
  await edge.close()
  const port = new URL(edge.url).port
  const refused = await new Promise<string>(resolve => {
    const s = connect(Number(port), '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve('connected') })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
  })
  t.equal(refused, 'ECONNREFUSED', 'nothing listens after close')
})
