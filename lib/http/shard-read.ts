import net from 'node:net'
import { UpstreamCutError, UpstreamTimeoutError } from '../errors.js'
import { Cancel } from '../cancel.js'

/**
 * A shard's chunk bytes read straight into memory the caller names (issue 16):
 * an edge's fill buffer (edge/fill/direct-source.ts), the router relay's
 * slabs (router/read/shard-windows.ts). The fill is the example below.
 *
 * Why: a fill through an HTTP client gets each socket read as a fresh 64 KiB
 * Buffer, parsed, wrapped, handed through streams and then copied into the
 * chunk's buffer. Measured on this machine (512 MiB from a bare node:http
 * server into pre-faulted chunk buffers), that costs 2.3 CPU-s per GB; the
 * same bytes read with the socket's `onread` straight into the chunk buffer
 * cost 0.19: the kernel's copy and nothing else. On a fill that was the
 * largest cost left after each block's CRC32C was taken once.
 *
 * Theory of operation. One keep-alive HTTP/1.1 connection per request in
 * flight, kept per shard origin (`ShardReads`), at most `connections` idle
 * (edge.upstreamConnections, router.upstream.connections), and one opened
 * ahead of a request the caller expects (`warm`). Unlike undici's
 * Pool, requests are not queued behind a cap here: the caller bounds them
 * (an edge's fills: edge.maxFills × edge.maxFillSegments, 32 by default, all
 * shards together; the router: ShardClient.readSlot, per shard).
 * Each connection's socket reads through `onread`: after each read (and once
 * at connect) it names the memory the kernel writes the next read into
 * (`target`):
 *   - the response head: a 16 KiB scratch buffer, until the blank line;
 *   - a 200/206 body with a destination (`BodyDest`): the destination's bytes
 *     at the body's own chunk offsets, `buf.subarray(pos, end)`, at most
 *     `MAX_READ` at a time, never past the body's Content-Length nor past
 *     what the fill still wants (`dest.end()`: a split segment wants less);
 *     bytes past that are read into scratch and dropped. Because that memory
 *     is named before the read it is for, the source tells the fill how far
 *     it may write (`dest.claim`), and the fill never splits a segment below
 *     that (fill.ts): another segment's bytes are never touched;
 *   - any other body (a refusal's JSON): scratch, kept for `text()`, up to 64 KiB;
 *     a refusal framed otherwise (a proxy's chunked 5xx, or one ended by the
 *     close) is read the same way, up to its last chunk or the close, and its
 *     connection is not kept.
 * The body's iterator yields views of the destination as bytes land (one view
 * for all that landed since the last), which the fill recognises as already
 * in place and does not copy (fill.ts `pump`). A body ends at its
 * Content-Length: the connection goes back to the idle list, unless the shard
 * said `connection: close`. A body without a Content-Length, with a transfer
 * coding, or with bytes past its end is a protocol error: the connection is
 * dropped and the request fails as cut.
 *
 * Failure: a reset, a close before the body's end, or a destroy by the reader
 * fails the request (UpstreamCutError 'cut'); no response head within
 * `headersTimeoutMs` (connect included) or no byte for `idleTimeoutMs` in a
 * body (a refusal's too): UpstreamTimeoutError. A 2xx other than the status
 * asked for (a 200 to a range) fails as cut before a byte lands. A reused
 * idle connection reset or closed before a byte of the answer (the shard
 * closed it meanwhile) is retried once on a new one, as HTTP clients do for
 * idempotent requests; a timeout is not (the next owner's turn). A request's
 * abort listener goes with its answer, so it never reaches the next request
 * on the kept connection. After a request ended, its
 * destination is never written again: `target` names it only while its body
 * is being read, and a connection is destroyed, not reused, when its reader
 * leaves early.
 */
export interface ShardReadOptions {
  connections: number
  headersTimeoutMs: number
  idleTimeoutMs: number
}

/** Where a body's bytes go: chunk byte i at `buf[i]`, as long as i < `end()`; `claim(e)`: the next read may write up to e. */
export interface BodyDest {
  buf: Buffer
  end(): number
  claim(upTo: number): void
}

export interface ShardBody extends AsyncIterable<Buffer> {
  destroy(): void
  /** a body without a destination (a refusal), read whole: its first 64 KiB */
  text(): Promise<string>
  /** resolves once the answer is off its connection: true when every byte landed, false when the request failed (never rejects) */
  settled(): Promise<boolean>
}

export interface ShardAnswer {
  statusCode: number
  headers: Record<string, string>
  body: ShardBody
}

const HEAD_MAX = 16 * 1024
const TEXT_MAX = 64 * 1024
/** the most one read may write into a destination: bounds how far ahead of the fill a claim goes */
export const MAX_READ = 1024 * 1024

/** One request's answer as it arrives. */
class Req {
  phase: 'head' | 'body' | 'text' | 'done' = 'head'
  headLen = 0
  /** the chunk offset of the body's next byte, and where the body ends */
  pos: number
  end = 0
  /** bytes landed in the destination: [from, landed) */
  landed: number
  text: Buffer[] = []
  textLen = 0
  /** a refusal without a Content-Length: chunked (ends at the last chunk) or delimited by the connection's close */
  unframed: 'chunked' | 'close' | undefined
  error: Error | undefined
  wake: (() => void) | undefined
  onHead: { resolve: (a: ShardAnswer) => void; reject: (e: Error) => void } | undefined
  headTimer: NodeJS.Timeout | undefined
  detach: () => void = () => {}
  /** waiting for phase 'done' (settled()) */
  private settledWaiters: ((whole: boolean) => void)[] | undefined

  constructor(readonly dest: BodyDest | undefined, readonly from: number, readonly expect: number) {
    this.pos = this.landed = from
  }

  notify(): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  /** Resolves once the request is done, whichever way: true when it ended whole, false when it failed. */
  settled(): Promise<boolean> {
    if (this.phase === 'done') return Promise.resolve(this.error === undefined)
    return new Promise<boolean>(r => { (this.settledWaiters ??= []).push(r) })
  }

  /** The request is done: its settled() waiters go. */
  settle(): void {
    const w = this.settledWaiters
    this.settledWaiters = undefined
    if (w) for (const r of w) r(this.error === undefined)
  }

  /** Resolves at the next change (bytes, the end, an error). */
  changed(): Promise<void> {
    return new Promise<void>(r => { this.wake = r })
  }
}

class Conn {
  readonly sock: net.Socket
  private readonly scratch = Buffer.allocUnsafeSlow(HEAD_MAX)
  private req: Req | undefined
  private dead = false
  /** the memory `target` named for the read in progress is the destination's */
  private intoDest = false
  private keep = true
  /** a byte of the current answer arrived: a failure after it is not a stale connection's */
  answered = false

  /** what the connection failed with last: a timeout is not a stale connection's */
  lastError: Error | undefined

  constructor(host: string, port: number, private readonly o: ShardReadOptions, private readonly release: (c: Conn) => void,
    private readonly forget: (c: Conn) => void) {
    this.sock = net.connect({ host, port, noDelay: true, onread: { buffer: () => this.target(), callback: (n, buf) => { this.landedIn(n, buf as Buffer); return true } } })
    this.sock.on('error', err => this.fail(new UpstreamCutError(`shard connection failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`, 'cut', { cause: err })))
    this.sock.on('close', () => {
      const req = this.req
      // a refusal delimited by the close is whole now
      if (req?.phase === 'text' && req.unframed === 'close') return this.finish(req)
      this.fail(new UpstreamCutError('the shard closed the connection', 'cut'))
    })
    this.sock.on('timeout', () => this.fail(new UpstreamTimeoutError(`a shard's chunk body (no byte for ${this.o.idleTimeoutMs} ms)`)))
  }

  get usable(): boolean {
    return !this.dead && this.req === undefined && !this.sock.destroyed
  }

  /** Sends one GET and resolves with the answer's head; the body follows through the answer's `body`. */
  request(hostHeader: string, path: string, headers: Record<string, string>, dest: BodyDest | undefined, from: number, expect: number,
    signal: AbortSignal | Cancel): Promise<ShardAnswer> {
    const req = new Req(dest, from, expect)
    this.req = req
    this.answered = false
    if (signal instanceof Cancel) req.detach = signal.listen(reason => this.fail(reason))
    else {
      const onAbort = () => this.fail(signal.reason instanceof Error ? signal.reason : new UpstreamCutError('aborted', 'cut'))
      signal.addEventListener('abort', onAbort, { once: true })
      req.detach = () => signal.removeEventListener('abort', onAbort)
    }
    let head = `GET ${path} HTTP/1.1\r\nhost: ${hostHeader}\r\n`
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
    this.sock.write(`${head}\r\n`)
    req.headTimer = setTimeout(() => this.fail(new UpstreamTimeoutError(`a shard's answer to ${path} (no response head within ${this.o.headersTimeoutMs} ms)`)),
      this.o.headersTimeoutMs)
    return new Promise((resolve, reject) => { req.onHead = { resolve, reject } })
  }

  /** The memory the next read goes into (see the theory above). */
  private target(): Buffer {
    const req = this.req
    this.intoDest = false
    if (req?.phase === 'body') {
      const stop = Math.min(req.end, req.dest!.end(), req.pos + MAX_READ)
      if (req.pos < stop && req.landed === req.pos) {
        req.dest!.claim(stop)
        this.intoDest = true
        return req.dest!.buf.subarray(req.pos, stop)
      }
    }
    if (req?.phase === 'head' && req.headLen < HEAD_MAX) return this.scratch.subarray(req.headLen)
    // a body's bytes past what the fill wants, a refusal's body: no byte past the body's end is taken
    // (bytes after it arrive with no request and drop the connection)
    if (req?.phase === 'body' || req?.phase === 'text') return this.scratch.subarray(0, Math.max(1, Math.min(HEAD_MAX, req.end - req.pos)))
    return this.scratch
  }

  private landedIn(n: number, buf: Buffer): void {
    if (n <= 0) return
    const req = this.req
    this.answered = true
    switch (req?.phase) {
      case 'head':
        req.headLen += n
        return this.parseHead(req)
      case 'body':
        if (this.intoDest) req.landed += n
        req.pos += n
        if (req.pos >= req.end) this.finish(req)
        return req.notify()
      case 'text':
        this.took(req, Buffer.from(buf.subarray(0, n)))
        if (req.pos >= req.end || refusalWhole(req)) this.finish(req)
        return req.notify()
      default:
        // bytes nobody asked for: the connection is out of step
        this.keep = false
        this.fail(new UpstreamCutError('a shard sent bytes nobody asked for', 'cut'))
    }
  }

  private parseHead(req: Req): void {
    const at = this.scratch.subarray(0, req.headLen).indexOf('\r\n\r\n')
    if (at < 0) {
      if (req.headLen >= HEAD_MAX) this.fail(new UpstreamCutError(`a shard's response head exceeds ${HEAD_MAX} bytes`, 'cut'))
      return
    }
    clearTimeout(req.headTimer)
    const lines = this.scratch.toString('latin1', 0, at).split('\r\n')
    const status = /^HTTP\/1\.[01] (\d{3}) /.exec(lines[0]!)
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':')
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
    }
    const len = Number(headers['content-length'])
    const framed = headers['transfer-encoding'] === undefined && headers['content-length'] !== undefined && Number.isSafeInteger(len) && len >= 0
    const statusCode = status === null ? 0 : Number(status[1])
    if (status === null || (!framed && statusCode >= 200 && statusCode < 300))
      return this.fail(new UpstreamCutError(`a shard answered without a Content-Length framed HTTP/1.1 response (${lines[0]!.slice(0, 80)})`, 'cut'))
    this.keep = framed && !/close/i.test(headers.connection ?? '')
    const rest = this.scratch.subarray(at + 4, req.headLen)
    if (framed && rest.length > len) return this.fail(new UpstreamCutError('a shard sent bytes past its response body', 'cut'))
    req.end = framed ? req.pos + len : Infinity
    // a refusal framed otherwise (a proxy's chunked 5xx; only refusals get here unframed): read as text, the connection goes
    if (!framed) req.unframed = /chunked/i.test(headers['transfer-encoding'] ?? '') ? 'chunked' : 'close'
    // a body that stalls fails after idleTimeoutMs, a refusal's as a chunk's
    this.sock.setTimeout(this.o.idleTimeoutMs)
    if (req.dest !== undefined && statusCode === req.expect) {
      req.phase = 'body'
      const n = Math.min(rest.length, Math.max(0, Math.min(req.end, req.dest.end()) - req.pos))
      rest.copy(req.dest.buf, req.pos, 0, n)
      req.landed += n
      req.pos += rest.length
    } else if (statusCode >= 200 && statusCode < 300) {
      // a 2xx that is not the answer asked for (a 200 to a ranged request): its bytes are not where the range's go
      this.fail(new UpstreamCutError(`a shard answered ${statusCode} where ${req.expect} was asked for`, 'cut'))
      return
    } else {
      req.phase = 'text'
      this.took(req, Buffer.from(rest))
    }
    const h = req.onHead!
    req.onHead = undefined
    h.resolve({ statusCode, headers, body: this.body(req) })
    if (req.pos >= req.end || refusalWhole(req)) this.finish(req)
  }

  /** A refusal's bytes, kept for `text()` (its first TEXT_MAX). */
  private took(req: Req, b: Buffer): void {
    if (req.textLen < TEXT_MAX) req.text.push(b)
    req.textLen += b.length
    req.pos += b.length
  }

  /** The answer is whole: the connection goes back to be reused, or closes. */
  private finish(req: Req): void {
    req.phase = 'done'
    req.detach()
    this.req = undefined
    this.sock.setTimeout(0)
    if (this.keep) this.release(this)
    else this.close()
    req.notify()
    req.settle()
  }

  private close(): void {
    if (!this.dead) this.forget(this)
    this.dead = true
    this.sock.destroy()
  }

  /** Ends the connection; the request on it, if any, fails with `err`. */
  fail(err: Error): void {
    const req = this.req
    this.req = undefined
    this.lastError ??= err
    this.close()
    if (req === undefined || req.phase === 'done') return
    req.phase = 'done'
    req.error = err
    req.detach()
    clearTimeout(req.headTimer)
    const h = req.onHead
    req.onHead = undefined
    h?.reject(err)
    req.notify()
    req.settle()
  }

  private body(req: Req): ShardBody {
    const conn = this
    const leave = () => { if (req.phase !== 'done' && conn.req === req) conn.fail(new UpstreamCutError('the reader left the body', 'cut')) }
    async function* pieces(): AsyncGenerator<Buffer> {
      let given = req.from
      try {
        for (;;) {
          if (req.landed > given) {
            const v = req.dest!.buf.subarray(given, req.landed)
            given = req.landed
            yield v
            continue
          }
          if (req.error) throw req.error
          if (req.phase === 'done') return
          await req.changed()
        }
      } finally {
        // left before the body's end: the rest would land in memory the reader no longer owns
        leave()
      }
    }
    const it = pieces()
    return {
      [Symbol.asyncIterator]: () => it,
      destroy: () => { leave(); void it.return(undefined) },
      text: async () => {
        while (req.phase !== 'done') await req.changed()
        if (req.error) throw req.error
        const all = Buffer.concat(req.text)
        return (req.unframed === 'chunked' ? chunked(all).data : all).toString('utf8')
      },
      settled: () => req.settled(),
    }
  }
}

/** An unframed refusal has all we keep of it: a chunked one's last chunk and trailers came, or TEXT_MAX of it did. */
function refusalWhole(req: Req): boolean {
  if (req.unframed === undefined) return false
  if (req.textLen >= TEXT_MAX) return true
  return req.unframed === 'chunked' && chunked(Buffer.concat(req.text)).ended
}

/**
 * A chunked body (RFC 9112 §7.1) as far as `b` holds it: its data, and
 * whether it ended (the last chunk, size 0, extensions allowed, then the
 * trailer section up to its empty line). A malformed size line ends it too:
 * nothing after it would make sense.
 */
export function chunked(b: Buffer): { data: Buffer; ended: boolean } {
  const out: Buffer[] = []
  const done = (ended: boolean) => ({ data: Buffer.concat(out), ended })
  for (let at = 0; ;) {
    const eol = b.indexOf('\r\n', at)
    if (eol < 0) return done(false)
    const size = parseInt(b.toString('latin1', at, eol).split(';')[0]!.trim(), 16)
    if (!Number.isSafeInteger(size) || size < 0) return done(true)
    if (size === 0) {
      // the trailer section: field lines, then an empty line
      for (let line = eol + 2; ;) {
        const end = b.indexOf('\r\n', line)
        if (end < 0) return done(false)
        if (end === line) return done(true)
        line = end + 2
      }
    }
    out.push(b.subarray(eol + 2, Math.min(b.length, eol + 2 + size)))
    at = eol + 2 + size + 2
    if (at > b.length) return done(false)
  }
}

/** how long a connection opened ahead (`warm`) waits for its request */
const WARM_MS = 1000

/** The connections to one shard origin (http: only). */
export class ShardReads {
  private readonly idle: Conn[] = []
  private closed = false
  private readonly host: string
  private readonly port: number
  private readonly hostHeader: string

  constructor(origin: string, private readonly o: ShardReadOptions) {
    const u = new URL(origin)
    if (u.protocol !== 'http:') throw new Error(`ShardReads reads http: origins only, not ${u.protocol}`)
    this.host = u.hostname.replace(/^\[|\]$/g, '')
    this.port = Number(u.port || 80)
    this.hostHeader = u.host
  }

  /**
   * GET `path`; an answer with status `expect` (200, or 206 for a range) lands
   * in `dest` at chunk offsets from `from` on. Another 2xx fails as cut; any
   * other status is read whole for `text()`.
   */
  async get(path: string, headers: Record<string, string>, dest: BodyDest | undefined, from: number, expect: number,
    signal: AbortSignal | Cancel): Promise<ShardAnswer> {
    // an AbortSignal's throwIfAborted, for either kind
    if (signal.aborted) throw signal.reason
    let conn: Conn | undefined
    while (conn === undefined && this.idle.length > 0) {
      const c = this.idle.pop()!
      if (c.usable) conn = c
    }
    if (conn === undefined) return this.open().request(this.hostHeader, path, headers, dest, from, expect, signal)
    try {
      return await conn.request(this.hostHeader, path, headers, dest, from, expect, signal)
    } catch (err) {
      // a kept connection the shard closed meanwhile (reset or closed before a byte of the answer): once more on a
      // new one; not a shard that does not answer in time (that is the next owner's turn), nor an abort
      if (conn.answered || signal.aborted || conn.lastError instanceof UpstreamTimeoutError) throw err
      return this.open().request(this.hostHeader, path, headers, dest, from, expect, signal)
    }
  }

  /**
   * Opens a connection ahead of the next request, unless one is idle already:
   * the request then pays no connect. Unused after WARM_MS it is closed: a
   * server times out a connection that sends no request (Node answers 408
   * after its headersTimeout), and that answer must not meet a request.
   */
  warm(): void {
    if (this.closed || this.idle.length > 0) return
    const c = this.open()
    this.idle.push(c)
    setTimeout(() => {
      // (failing it takes it out of `idle`: the connection's forget)
      if (this.idle.includes(c) && !c.answered && c.usable) c.fail(new UpstreamCutError('closed: opened ahead and not used', 'cut'))
    }, WARM_MS).unref()
  }

  private open(): Conn {
    return new Conn(this.host, this.port, this.o, c => {
      if (!this.closed && this.idle.length < this.o.connections) this.idle.push(c)
      else c.fail(new UpstreamCutError('closed: enough idle connections', 'cut'))
    }, c => {
      const i = this.idle.indexOf(c)
      if (i >= 0) this.idle.splice(i, 1)
    })
  }

  /** Closes the idle connections; those in use close when their answer ends. */
  close(): void {
    this.closed = true
    for (const c of this.idle.splice(0)) c.fail(new UpstreamCutError('closed', 'cut'))
  }
}
