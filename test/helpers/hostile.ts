import net from 'node:net'
import type { Test } from 'tap'

/**
 * The hostile-input battery, run against any reelcdn HTTP surface (shard,
 * router, edge). Requests go over raw sockets so that nothing on the client
 * side normalises paths, fixes framing or refuses odd methods. Each case gets a
 * clear answer, and after every case the server still serves a good request.
 */
export interface Surface {
  base: string
  /** a path that answers 200 to GET */
  good: string
  /** where an id goes in a GET path */
  idPath: (id: string) => string
  /** a path that takes a JSON PUT, if any, and the size limit it enforces */
  jsonPut?: { path: string; maxBytes: number; headers?: Record<string, string> }
  /** a path serving a byte representation, for the range cases */
  bytes?: string
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
  /** run only these groups (by the keys of GROUPS), e.g. a second route of the same surface */
  only?: Group[]
}

export type Group = 'traversal' | 'ranges' | 'limits' | 'methods' | 'smuggling' | 'slowloris' | 'idle' | 'bodies' | 'timeouts' | 'headers'

export interface Raw {
  status: number
  head: string
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
      resolve({ status: m ? Number(m[1]) : 0, head: buf.split('\r\n\r\n')[0] ?? '', closed })
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
    t.test('malformed, reversed, overflowing, suffix, multiple and absurdly many ranges', async t => {
      const many = 'bytes=' + Array.from({ length: 5000 }, (_, i) => `${i}-${i}`).join(',')
      const overlapping = 'bytes=' + Array.from({ length: 200 }, () => '0-1000').join(',')
      for (const range of ['bytes=5-1', 'bytes=--1', 'bytes=1-2-3', 'bytes=abc', 'bytes=99999999999999999999999-', 'bytes=-99999999999999999999',
        'bytes=0-18446744073709551616', 'bytes=-0', 'bytes=-1', 'bytes=0-0,-1', 'bytes=0-1,2-3,4-5', overlapping, 'bytes=' + ',' .repeat(3000), 'furlongs=0-1']) {
        const r = await raw(s.base, get(bytes, `range: ${range}\r\n`))
        t.ok([200, 206, 416].includes(r.status), `${range.slice(0, 40)}: ${r.status}`)
      }
      const r = await raw(s.base, get(bytes, `range: ${many}\r\n`))
      t.ok([200, 206, 416, 431].includes(r.status), `5000 ranges: ${r.status}`)
      await stillServes(t, s, 'ranges')
    })
  }

  if (on('limits')) t.test('URLs and headers over the limits, and a thousand headers', async t => {
    t.equal((await raw(s.base, get('/' + 'a'.repeat(10_000)))).status, 414, 'long URL')
    t.equal((await raw(s.base, get(s.good, `x-big: ${'b'.repeat(64 * 1024)}\r\n`))).status, 431, 'huge header')
    const thousand = Array.from({ length: 1000 }, (_, i) => `x-h${i}: v\r\n`).join('')
    t.equal((await raw(s.base, get(s.good, thousand))).status, 431, 'a thousand headers')
    await stillServes(t, s, 'oversized headers')
  })

  if (on('methods')) t.test('unknown and lowercase methods, HTTP/1.0 and odd versions', async t => {
    for (const line of [`FOO ${s.good} HTTP/1.1`, `get ${s.good} HTTP/1.1`, `BREW ${s.good} HTTP/1.1`]) {
      const r = await raw(s.base, `${line}\r\nhost: t\r\n\r\n`)
      t.ok([400, 405, 501].includes(r.status), `${line}: ${r.status}`)
    }
    const old = await raw(s.base, `GET ${s.good} HTTP/1.0\r\n\r\n`)
    t.equal(old.status, 200, 'HTTP/1.0 is served')
    t.ok(old.closed, 'and closed after')
    for (const v of ['HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1.1', 'HTCPCP/1.0']) {
      const r = await raw(s.base, `GET ${s.good} ${v}\r\nhost: t\r\n\r\n`)
      t.ok([400, 505].includes(r.status), `${v}: ${r.status}`)
    }
    await stillServes(t, s, 'odd methods and versions')
  })

  if (on('smuggling')) t.test('request smuggling: Content-Length with Transfer-Encoding, or two Content-Lengths', async t => {
    const path = s.jsonPut?.path ?? s.good
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
    const { hostname, port } = new URL(s.base)
    const slow = net.connect(Number(port), hostname)
    slow.on('error', () => {})
    const closed = new Promise<number>(resolve => slow.on('close', () => resolve(Date.now())))
    const t0 = Date.now()
    slow.write(`GET ${s.good} HTTP/1.1\r\nhost: t\r\n`)
    const drip = setInterval(() => { if (!slow.destroyed) slow.write('x-drip: 1\r\n') }, Math.max(20, s.headersTimeoutMs / 10))
    try {
      await stillServes(t, s, 'a slowloris started')
      const at = await Promise.race([closed, new Promise<number>(r => setTimeout(() => r(-1), s.headersTimeoutMs * 4 + 3000))])
      t.ok(at > 0, `cut after ${at - t0} ms (header timeout ${s.headersTimeoutMs} ms)`)
    } finally {
      clearInterval(drip)
      slow.destroy()
    }
  })

  if (on('idle')) t.test('hundreds of idle connections do not stop service', async t => {
    const { hostname, port } = new URL(s.base)
    const idle = await Promise.all(Array.from({ length: 300 }, () => new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(Number(port), hostname, () => resolve(c))
      c.on('error', reject)
    })))
    try {
      await stillServes(t, s, '300 idle connections')
      t.pass('served with 300 idle connections open')
    } finally {
      for (const c of idle) c.destroy()
    }
  })

  if (s.jsonPut && on('bodies')) {
    const jp = s.jsonPut
    t.test('oversized bodies get 413 and bad JSON gets 400 naming the problem', async t => {
      const extra = Object.entries(jp.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      const big = await raw(s.base, `PUT ${jp.path} HTTP/1.1\r\nhost: t\r\n${extra}content-type: application/json\r\ncontent-length: ${jp.maxBytes + 1}\r\n\r\n{`)
      t.equal(big.status, 413, 'declared too large')
      const body = '{"nope": '
      const bad = await raw(s.base, `PUT ${jp.path} HTTP/1.1\r\nhost: t\r\n${extra}connection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
      t.equal(bad.status, 400, 'bad JSON')
      await stillServes(t, s, 'bad bodies')
    })
  }
  if (on('headers')) t.test('NUL, bare CR and obs-fold in headers, absolute-form and asterisk targets', async t => {
    for (const h of ['x-a: a\x00b\r\n', 'x-a: a\rb\r\n', 'x-a: a\r\n  folded\r\n', 'bad header\r\n', ': empty-name\r\n']) {
      const r = await raw(s.base, `GET ${s.good} HTTP/1.1\r\nhost: t\r\n${h}\r\n`)
      t.equal(r.status, 400, `${JSON.stringify(h)}: ${r.status}`)
      t.ok(r.closed, 'and the connection is closed')
    }
    const abs = await raw(s.base, get(`http://elsewhere.example${s.good}`))
    t.ok([200, 400, 404].includes(abs.status), `absolute-form target: ${abs.status}`)
    const star = await raw(s.base, 'OPTIONS * HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n')
    t.ok([400, 404].includes(star.status), `OPTIONS *: ${star.status}`)
    await stillServes(t, s, 'odd headers')
  })

  if (on('timeouts') && s.keepAliveTimeoutMs !== undefined) {
    const ka = s.keepAliveTimeoutMs
    t.test('an idle kept-alive connection is closed after the keep-alive timeout', async t => {
      const { hostname, port } = new URL(s.base)
      const c = net.connect(Number(port), hostname)
      c.on('error', () => {})
      let buf = ''
      c.on('data', d => { buf += d.toString('latin1') })
      const closed = new Promise<number>(resolve => c.on('close', () => resolve(Date.now())))
      c.write(`HEAD ${s.good} HTTP/1.1\r\nhost: t\r\n\r\n`)
      const t0 = Date.now()
      const at = await Promise.race([closed, new Promise<number>(r => setTimeout(() => r(-1), ka * 4 + 3000))])
      c.destroy()
      t.match(buf, /^HTTP\/1\.1 200/, 'answered first')
      t.ok(at > 0, `closed ${at - t0} ms after the answer (keep-alive timeout ${ka} ms)`)
    })
  }

  if (on('timeouts') && s.requestTimeoutMs !== undefined && (s.streamPut ?? s.jsonPut)) {
    const rt = s.requestTimeoutMs
    const put = (s.streamPut ?? s.jsonPut)!
    t.test('a request whose body stalls is cut by the request timeout while others are served', async t => {
      const { hostname, port } = new URL(s.base)
      const c = net.connect(Number(port), hostname)
      c.on('error', () => {})
      let buf = ''
      c.on('data', d => { buf += d.toString('latin1') })
      const closed = new Promise<number>(resolve => c.on('close', () => resolve(Date.now())))
      const extra = Object.entries(put.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      const t0 = Date.now()
      c.write(`PUT ${put.path} HTTP/1.1\r\nhost: t\r\n${extra}content-type: application/json\r\ncontent-length: 100000\r\n\r\n{"a":`)
      try {
        await stillServes(t, s, 'a stalled body')
        const at = await Promise.race([closed, new Promise<number>(r => setTimeout(() => r(-1), rt * 3 + 3000))])
        t.ok(at > 0, `cut after ${at - t0} ms (request timeout ${rt} ms)`)
        const m = /^HTTP\/1\.1 (\d{3})/.exec(buf)
        t.ok(!m || Number(m[1]) >= 400, `answered ${m?.[1] ?? 'nothing'} before the close`)
      } finally {
        c.destroy()
      }
    })
  }
}

