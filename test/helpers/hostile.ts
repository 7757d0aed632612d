import net from 'node:net'
import type { Test } from 'tap'
import { requestLineCases } from './hostile-http.js'

/**
 * The hostile-input battery, run against any reelcdn HTTP surface (shard,
 * router, edge). Requests go over raw sockets so that nothing on the client
 * side normalises paths, fixes framing or refuses odd methods. Each case gets a
 * clear answer, and after every case the server still serves a good request.
 * The request-line and header-field cases (RFC 9112 as a class) are in
 * hostile-http.ts.
 */
export interface Surface {
  base: string
  /** a path that answers 200 to GET */
  good: string
  /** where an id goes in a GET path */
  idPath: (id: string) => string
  /** a route that takes a JSON body (PUT unless `method` says otherwise), if any, the body limit it enforces, and the headers that get past its auth */
  jsonBody?: { path: string; maxBytes: number; method?: string; headers?: Record<string, string> }
  /** a path serving a byte representation of at least 4 KiB, for the range cases */
  bytes?: string
  /** the surface's http.maxRanges (default 16): more ranges than this get the whole representation */
  maxRanges?: number
  headersTimeoutMs: number
  /** the surface's http.requestTimeoutMs: a request whose body stalls must be cut by then */
  requestTimeoutMs?: number
  /** the surface's http.keepAliveTimeoutMs: an idle kept-alive connection must be closed by then */
  keepAliveTimeoutMs?: number
  /** a path taking a streamed PUT body (the router's ingest), with the headers it needs to get past auth */
  streamPut?: { path: string; headers?: Record<string, string> }
  /** the method and extra headers of the traversal requests (DELETE for a purge route) */
  method?: string
  headers?: Record<string, string>
  /** run only these groups, e.g. a second route of the same surface */
  only?: Group[]
  /** send each request-line and field case this many times, on fresh connections (an edge with serve threads: either may accept) */
  repeat?: number
}

/** `http`: the request-line and header-field rules of RFC 9112 (test/helpers/hostile-http.ts) */
export type Group = 'traversal' | 'ranges' | 'limits' | 'http' | 'smuggling' | 'slowloris' | 'idle' | 'bodies' | 'timeouts'

export interface Raw {
  status: number
  head: string
  /** what followed the head, as latin1 (a whole body when the server closed after it) */
  body: string
  closed: boolean
}

/** Sends raw bytes, reads until the server closes or `waitMs` passes; parses the first status line. */
export function raw(base: string, data: string | Buffer, waitMs = 2000): Promise<Raw> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname)
    let buf = ''
    let closed = false
    const done = () => {
      clearTimeout(timer)
      s.destroy()
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf)
      const end = buf.indexOf('\r\n\r\n')
      resolve({ status: m ? Number(m[1]) : 0, head: end < 0 ? buf : buf.slice(0, end), body: end < 0 ? '' : buf.slice(end + 4), closed })
    }
    const timer = setTimeout(done, waitMs)
    s.on('connect', () => s.write(data))
    s.on('data', d => { buf += d.toString('latin1') })
    s.on('end', () => { closed = true; done() })
    s.on('close', () => { closed = true; done() })
    s.on('error', err => (buf ? done() : reject(err)))
  })
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n${extra}\r\n`

/** Parts of a multipart/byteranges body: one Content-Range header each. */
const parts = (body: string) => (body.match(/\r\ncontent-range: bytes \d+-\d+\/\d+\r\n/gi) ?? []).length

export async function stillServes(t: Test, s: Surface, what: string): Promise<void> {
  const r = await raw(s.base, get(s.good))
  if (r.status !== 200) t.fail(`after ${what}: a good request got ${r.status}`)
}

export async function hostileBattery(t: Test, s: Surface): Promise<void> {
  const on = (g: Group) => !s.only || s.only.includes(g)
  const extraHeaders = Object.entries(s.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  if (on('traversal')) t.test('traversal in every encoding is refused', async t => {
    for (const id of ['..', '%2e%2e', '%2E%2E', '.%2e', '%2e.', 'a%2fb', 'a%2F..%2Fb', 'a%5c..%5cb', '%252e%252e', '%c0%ae%c0%ae',
      '%e0%80%ae%e0%80%ae', '%25%32%65%25%32%65', '..%c0%af..%c0%afetc', '%2e%2e%2f%2e%2e%2fetc%2fpasswd', '..\\..\\x', 'a%00', '%00', 'a%00.mp4', '%ff%fe', '%', 'a%20b', 'x'.repeat(200), '..%2f..%2fetc%2fpasswd', '%2e%2e%5c']) {
      const r = await raw(s.base, `${s.method ?? 'GET'} ${s.idPath(id)} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n${extraHeaders}\r\n`)
      t.ok(r.status === 400 || r.status === 404, `${id}: ${r.status}`)
    }
    await stillServes(t, s, 'traversal')
  })

  if (s.bytes && on('ranges')) {
    const bytes = s.bytes
    const maxRanges = s.maxRanges ?? 16
    t.test('malformed, reversed, overflowing, suffix, multiple and absurdly many ranges get exact answers', async t => {
      const whole = await raw(s.base, get(bytes))
      t.equal(whole.status, 200, 'the representation without a Range header')
      const size = Number(/\r\ncontent-length: (\d+)/i.exec(whole.head)?.[1])
      t.ok(size >= 4096, `a representation of ${size} bytes to range over`)
      const last = `${size - 1}`
      // RFC 9110 §14 as lib/http/range.ts reads it: an invalid header or unknown unit is ignored (200), a valid set
      // with no satisfiable range is 416, more than maxRanges ranges is ignored (200), near ranges are merged
      const overlapping = 'bytes=' + Array.from({ length: maxRanges + 184 }, () => '0-1000').join(',')
      const cases: [range: string, status: number, contentRange?: string][] = [
        ['bytes=5-1', 200], ['bytes=--1', 200], ['bytes=1-2-3', 200], ['bytes=abc', 200], ['furlongs=0-1', 200],
        ['bytes=' + ','.repeat(3000), 200], [overlapping, 200],
        ['bytes=99999999999999999999999-', 416, `bytes */${size}`], ['bytes=-0', 416, `bytes */${size}`], [`bytes=${size}-`, 416, `bytes */${size}`],
        ['bytes=-99999999999999999999', 206, `bytes 0-${last}/${size}`], ['bytes=0-18446744073709551616', 206, `bytes 0-${last}/${size}`],
        ['bytes=-1', 206, `bytes ${last}-${last}/${size}`], ['bytes=0-1,2-3,4-5', 206, `bytes 0-5/${size}`],
        ['bytes=0-0,-1', 206],
      ]
      for (const [range, status, cr] of cases) {
        const r = await raw(s.base, get(bytes, `range: ${range}\r\n`))
        t.equal(r.status, status, `${range.slice(0, 40)}: ${status}`)
        if (cr !== undefined) t.match(r.head, new RegExp(`\r\ncontent-range: ${cr.replace(/[*/]/g, c => '\\' + c)}\r\n`, 'i'), `${range.slice(0, 40)}: ${cr}`)
        if (status === 200) t.match(r.head, new RegExp(`\r\ncontent-length: ${size}\r\n`, 'i'), `${range.slice(0, 40)}: the whole representation`)
      }
      const two = await raw(s.base, get(bytes, 'range: bytes=0-0,-1\r\n'))
      t.match(two.head, /\r\ncontent-type: multipart\/byteranges; boundary=/i, 'two distant ranges: multipart')
      t.equal(parts(two.body), 2, 'with two parts')
      const many = 'bytes=' + Array.from({ length: 5000 }, (_, i) => `${i}-${i}`).join(',')
      t.equal((await raw(s.base, get(bytes, `range: ${many}\r\n`))).status, 431, '5000 ranges: a header over http.maxHeaderBytes, 431')
      await stillServes(t, s, 'ranges')
    })

    t.test(`exactly http.maxRanges (${maxRanges}) ranges get a multipart 206, one more the whole representation`, async t => {
      // 200 bytes apart: farther than the 80-byte gap below which lib/http/range.ts merges two ranges
      const spec = (n: number) => 'bytes=' + Array.from({ length: n }, (_, i) => `${i * 200}-${i * 200 + 9}`).join(',')
      const at = await raw(s.base, get(bytes, `range: ${spec(maxRanges)}\r\n`))
      t.equal(at.status, 206, `${maxRanges} ranges: 206`)
      t.match(at.head, /\r\ncontent-type: multipart\/byteranges; boundary=/i, 'multipart')
      t.equal(parts(at.body), maxRanges, `with ${maxRanges} parts`)
      t.match(at.body, new RegExp(`content-range: bytes ${(maxRanges - 1) * 200}-${(maxRanges - 1) * 200 + 9}/`, 'i'), 'the last range among them')
      const over = await raw(s.base, get(bytes, `range: ${spec(maxRanges + 1)}\r\n`))
      t.equal(over.status, 200, `${maxRanges + 1} ranges: 200`)
      t.notMatch(over.head, /\r\ncontent-range:/i, 'no Content-Range')
      t.notMatch(over.head, /\r\ncontent-type: multipart/i, 'not multipart')
      t.match(over.head, /\r\ncontent-length: (\d+)\r\n/i, 'the whole representation')
      t.equal(Number(/\r\ncontent-length: (\d+)\r\n/i.exec(over.head)?.[1]), Number(/\r\ncontent-length: (\d+)\r\n/i.exec((await raw(s.base, get(bytes))).head)?.[1]), 'as long as without a Range header')
      await stillServes(t, s, 'maxRanges')
    })
  }

  if (on('limits')) t.test('URLs and headers over the limits, and a thousand headers', async t => {
    t.equal((await raw(s.base, get('/' + 'a'.repeat(10_000)))).status, 414, 'long URL')
    t.equal((await raw(s.base, get(s.good, `x-big: ${'b'.repeat(64 * 1024)}\r\n`))).status, 431, 'huge header')
    const thousand = Array.from({ length: 1000 }, (_, i) => `x-h${i}: v\r\n`).join('')
    t.equal((await raw(s.base, get(s.good, thousand))).status, 431, 'a thousand headers')
    await stillServes(t, s, 'oversized headers')
  })

  if (on('http')) t.test('request-line and header-field rules of RFC 9112, as a class', t => requestLineCases(t, s))

  if (on('smuggling')) t.test('request smuggling: Content-Length with Transfer-Encoding, or two Content-Lengths', async t => {
    const path = s.jsonBody?.path ?? s.good
    const both = await raw(s.base, `POST ${path} HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: t\r\n\r\n`)
    t.equal(both.status, 400, 'CL + TE')
    t.ok(both.closed, 'connection closed')
    t.notMatch(both.head, /smuggled/)
    const dup = await raw(s.base, `PUT ${path} HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ncontent-length: 30\r\n\r\nabc`)
    t.equal(dup.status, 400, 'duplicate Content-Length')
    t.ok(dup.closed, 'connection closed')
    await stillServes(t, s, 'smuggling')
  })

  if (on('slowloris')) t.test('a slowloris is cut by the header timeout while others are served', async t => {
    const slow = connectRaw(s.base)
    const t0 = Date.now()
    slow.socket.write(`GET ${s.good} HTTP/1.1\r\nhost: t\r\n`)
    const drip = setInterval(() => { if (!slow.socket.destroyed) slow.socket.write('x-drip: 1\r\n') }, Math.max(20, s.headersTimeoutMs / 10))
    try {
      const served = await serveWhile(t, s, slow.closed, s.headersTimeoutMs * 4 + 3000)
      const at = await settled(slow.closed, 0)
      t.ok(at > 0, `cut after ${at - t0} ms`)
      // not before its timeout: what cut it is the header timeout, not something else
      t.ok(at - t0 >= s.headersTimeoutMs * 0.9, `cut after ${at - t0} ms, no sooner than the header timeout of ${s.headersTimeoutMs} ms`)
      t.match(slow.data(), /^HTTP\/1\.1 408 /, 'answered 408 before the close')
      t.ok(served >= 1, `${served} other requests served meanwhile, every one 200`)
    } finally {
      clearInterval(drip)
      slow.socket.destroy()
    }
  })

  if (on('idle')) t.test('hundreds of idle connections are cut by the header timeout while others are served', async t => {
    // a connection that never sends a byte is waiting for headers: the header timeout (or a shorter request timeout) cuts it
    const limit = Math.min(s.headersTimeoutMs, s.requestTimeoutMs || Infinity)
    const t0 = Date.now()
    const idle = await Promise.all(Array.from({ length: 300 }, () => new Promise<ReturnType<typeof connectRaw>>((resolve, reject) => {
      const c = connectRaw(s.base)
      c.socket.once('connect', () => resolve(c))
      c.socket.once('error', reject)
    })))
    try {
      const all = Promise.all(idle.map(c => c.closed))
      const served = await serveWhile(t, s, all, limit * 4 + 3000)
      t.ok(served >= 1, `${served} requests served while 300 idle connections were open, every one 200`)
      const times = await settled(all, 0)
      t.ok(times !== -1, `all 300 cut (timeout ${limit} ms)`)
      if (times !== -1) {
        t.ok(Math.min(...times) - t0 >= limit * 0.9, `none before the timeout (first after ${Math.min(...times) - t0} ms, last after ${Math.max(...times) - t0} ms)`)
        t.ok(idle.every(c => /^HTTP\/1\.1 408 /.test(c.data()) || c.data() === ''), 'each answered 408, or closed without a word')
      }
    } finally {
      for (const c of idle) c.socket.destroy()
    }
  })

  if (s.jsonBody && on('bodies')) {
    const jb = s.jsonBody
    const method = jb.method ?? 'PUT'
    const extra = Object.entries(jb.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    const send = (body: string, headers: string) =>
      raw(s.base, `${method} ${jb.path} HTTP/1.1\r\nhost: t\r\n${extra}connection: close\r\ncontent-type: application/json\r\n${headers}\r\n${body}`)
    const error = (r: Raw) => { try { return (JSON.parse(r.body) as { error: { code: string; message: string } }).error } catch { return undefined } }
    t.test(`${method} ${jb.path}: oversized bodies get 413 and bad JSON gets 400 naming the problem`, async t => {
      const declared = await raw(s.base, `${method} ${jb.path} HTTP/1.1\r\nhost: t\r\n${extra}content-type: application/json\r\ncontent-length: ${jb.maxBytes + 1}\r\n\r\n{`)
      t.equal(declared.status, 413, 'a declared length over the limit: 413')
      t.ok(declared.closed, 'and the connection is closed, its body unread')
      t.match(error(declared), { code: 'CDN_ERR_TOO_LARGE', message: new RegExp(`exceeds the limit of ${jb.maxBytes}`) }, 'naming the limit')
      // chunked: no length to refuse up front, the limit is counted as the body arrives
      const over = '[' + ' '.repeat(jb.maxBytes) + ']'
      const streamed = await send(`${over.length.toString(16)}\r\n${over}\r\n0\r\n\r\n`, 'transfer-encoding: chunked\r\n')
      t.equal(streamed.status, 413, 'a chunked body growing past the limit: 413')
      t.match(error(streamed), { code: 'CDN_ERR_TOO_LARGE', message: new RegExp(`limit of ${jb.maxBytes} bytes`) })
      // exactly at the limit is read, and then judged as JSON
      const atLimit = '[' + ' '.repeat(jb.maxBytes - 2) + ']'
      const at = await send(atLimit, `content-length: ${atLimit.length}\r\n`)
      t.equal(at.status, 400, `a body of exactly ${jb.maxBytes} bytes is read (400: valid JSON, but not what the route takes)`)
      t.notMatch(error(at)?.code ?? '', /TOO_LARGE|BAD_JSON/, 'not refused for its size or its syntax')
      for (const [body, problem] of [['{"nope": ', /Unexpected end of JSON input/], ['{"a" 1}', /Expected ':' after property name in JSON at position 5/],
        ['{"a": 1,}', /JSON at position 8/], ['\u00ff', /Unexpected token/]] as const) {
        const bad = await send(body, `content-length: ${Buffer.byteLength(body)}\r\n`)
        t.equal(bad.status, 400, `${JSON.stringify(body)}: 400`)
        const e = error(bad)
        t.equal(e?.code, 'CDN_ERR_BAD_JSON', 'CDN_ERR_BAD_JSON')
        t.match(e?.message, /^request body is not valid JSON: /, 'says the body is not JSON')
        t.match(e?.message, problem, `and names the problem: ${e?.message}`)
      }
      await stillServes(t, s, 'bad bodies')
    })
  }
  if (on('timeouts') && s.keepAliveTimeoutMs !== undefined) {
    const ka = s.keepAliveTimeoutMs
    t.test('an idle kept-alive connection is closed after the keep-alive timeout while others are served', async t => {
      const c = connectRaw(s.base)
      c.socket.write(`HEAD ${s.good} HTTP/1.1\r\nhost: t\r\n\r\n`)
      await until(() => /\r\n\r\n/.test(c.data()), 'the answer', ka * 4 + 3000)
      const t0 = Date.now()
      try {
        t.match(c.data(), /^HTTP\/1\.1 200/, 'answered first, and kept alive')
        const served = await serveWhile(t, s, c.closed, ka * 4 + 3000)
        const at = await settled(c.closed, 0)
        t.ok(at > 0, `closed ${at - t0} ms after the answer (keep-alive timeout ${ka} ms)`)
        t.ok(at - t0 >= ka * 0.8, 'not before the keep-alive timeout')
        // Node 20 keeps the socket a second past keepAliveTimeout, so that a client honouring `Keep-Alive: timeout=` closes first
        t.ok(at - t0 <= ka + 3000, 'within a second or two after it')
        t.ok(served >= 1, `${served} other requests served meanwhile, every one 200`)
      } finally {
        c.socket.destroy()
      }
    })
  }

  if (on('timeouts') && s.requestTimeoutMs && (s.streamPut ?? s.jsonBody)) {
    const rt = s.requestTimeoutMs
    const put = s.streamPut ? { ...s.streamPut, method: 'PUT', maxBytes: 100_000 } : s.jsonBody!
    t.test('a request whose body stalls is cut by the request timeout while others are served', async t => {
      const c = connectRaw(s.base)
      const extra = Object.entries(put.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      const t0 = Date.now()
      // a length within the route's limit, so only the stall can end it
      c.socket.write(`${put.method ?? 'PUT'} ${put.path} HTTP/1.1\r\nhost: t\r\n${extra}content-type: application/json\r\ncontent-length: ${Math.min(100_000, put.maxBytes)}\r\n\r\n{"a":`)
      try {
        const served = await serveWhile(t, s, c.closed, rt * 3 + 3000)
        const at = await settled(c.closed, 0)
        t.ok(at > 0, `cut after ${at - t0} ms (request timeout ${rt} ms)`)
        t.ok(at - t0 >= rt * 0.9, 'not before the request timeout')
        t.match(c.data(), /^HTTP\/1\.1 408 /, 'answered 408 before the close')
        t.ok(served >= 1, `${served} other requests served meanwhile, every one 200`)
      } finally {
        c.socket.destroy()
      }
    })
  }
}

/** A raw connection: when it closed, and what it received. */
function connectRaw(base: string) {
  const { hostname, port } = new URL(base)
  const socket = net.connect(Number(port), hostname)
  socket.on('error', () => {})
  let buf = ''
  socket.on('data', d => { buf += d.toString('latin1') })
  const closed = new Promise<number>(resolve => socket.on('close', () => resolve(Date.now())))
  return { socket, closed, data: () => buf }
}

/** Good requests one after another until `done` settles (or `maxMs` passes): every one must be a 200. Returns how many. */
async function serveWhile(t: Test, s: Surface, done: Promise<unknown>, maxMs: number): Promise<number> {
  let over = false
  void done.then(() => { over = true }, () => { over = true })
  const end = Date.now() + maxMs
  let n = 0
  while (!over && Date.now() < end) {
    const r = await raw(s.base, get(s.good))
    if (r.status !== 200) t.fail(`a good request got ${r.status} meanwhile`)
    n++
    await new Promise(r => setTimeout(r, 20))
  }
  return n
}

/** `p`'s value, or -1 if it has not settled within `ms`. */
function settled<T>(p: Promise<T>, ms: number): Promise<T | -1> {
  return Promise.race([p, new Promise<-1>(r => setTimeout(() => r(-1), ms))])
}

async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 5))
  }
}
