import net from 'node:net'

/**
 * GETs of chunk bytes from one shard over plain HTTP/1.1 keep-alive sockets,
 * for the router's relay: the one request whose body is large and crosses the
 * router, so the cost per byte is the cost of the syscalls that move it.
 *
 * Why not undici (shard-client.ts keeps it for every other call): undici reads
 * its sockets in 64 KiB pieces, one read() and one JS callback each, and the
 * relay then writes each piece to its client with one writev: 32 syscalls per
 * MiB, which on this machine cost more than the bytes (a bare relay measured
 * 2.9 s of CPU per GB through undici, 1.3 s/GB this way; docs/benchmarks.md).
 * Here each socket reads into a buffer of its own (`onread`), up to SLAB bytes
 * at a time: one read() takes whatever the kernel holds (about 450 KiB on
 * loopback), and the relay forwards it with one write.
 *
 * Buffers. A socket reads into the free tail of its current slab; the bytes
 * read are handed out as a view and never written again, and the next read
 * goes after them (a fresh slab when less than MIN_FREE is left). So a view
 * stays valid however long the consumer holds it, without a copy.
 *
 * A response. The head is parsed from the first bytes (status, content-length,
 * connection); the body is exactly content-length bytes. Pieces go into a
 * queue the consumer drains as an async iterator; while two pieces wait there
 * (at most 2 SLABs) the socket is paused (backpressure reaches the shard), and the body
 * timeout runs only while the socket is reading, so a slow client never times
 * out its shard. A body that ends early, a reset or a timeout ends the
 * iterator with an error carrying undici's codes (UND_ERR_*), so that
 * shard-client's translate names it the same way.
 *
 * Sockets. At most `connections` at once; further requests wait in order. A
 * socket goes back to the idle list when its response ended cleanly, and is
 * closed after keepAliveMs idle. A request on a reused socket that fails
 * before any byte of its answer (the shard closed it meanwhile) is sent once
 * more on a new socket.
 */
const SLAB = 1024 * 1024
const MIN_FREE = 128 * 1024
const MAX_HEAD = 16 * 1024

export interface ChunkGetOptions {
  connections: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  keepAliveMs: number
}

export class ChunkGetError extends Error {
  constructor(message: string, readonly code: string) {
    super(message)
  }
}

/** A response: status and headers, its body as pieces (views, never copied). */
export class ChunkResponse implements AsyncIterable<Buffer> {
  statusCode = 0
  headers: Record<string, string> = {}
  /** the body's length (content-length) */
  length = 0
  /** body bytes still to come */
  left = 0
  private queue: Buffer[] = []
  private failed: Error | undefined
  private ended = false
  private wake: (() => void) | undefined
  destroyed = false
  private doneCb: (() => void) | undefined
  private isDone = false

  /**
   * Told once, when the body ended, failed or was destroyed; at once when that
   * already happened (a small refusal can end before its caller sets this:
   * the shard's outstanding count would then never come down).
   */
  set onDone(cb: (() => void) | undefined) {
    if (this.isDone) cb?.()
    else this.doneCb = cb
  }

  constructor(private readonly conn: Conn) {}

  /** @internal a piece arrived; false: pause the socket until the consumer takes it (one piece may wait) */
  push(b: Buffer): boolean {
    if (b.length) this.queue.push(b)
    this.wake?.()
    return this.queue.length <= 1
  }

  /** @internal */
  end(err?: Error): void {
    if (this.ended) return
    this.ended = true
    this.failed = err
    this.done()
    this.wake?.()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const b = this.queue.shift()
      if (b) {
        if (this.queue.length <= 1 && !this.ended) this.conn.resume()
        yield b
        continue
      }
      if (this.failed) throw this.failed
      if (this.ended || this.destroyed) return
      this.conn.resume()
      await new Promise<void>(r => { this.wake = r })
      this.wake = undefined
    }
  }

  /** The (small) body of a refusal as text. */
  async text(): Promise<string> {
    const parts: Buffer[] = []
    for await (const b of this) parts.push(b)
    return Buffer.concat(parts).toString('utf8')
  }

  /** Drops the rest: the socket is closed unless the body had ended. */
  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.queue = []
    if (!this.ended) this.conn.kill(new ChunkGetError('response destroyed', 'UND_ERR_ABORTED'))
    this.done()
    this.wake?.()
  }

  private done(): void {
    if (this.isDone) return
    this.isDone = true
    const d = this.doneCb
    this.doneCb = undefined
    d?.()
  }
}

export class ChunkGetPool {
  private readonly idle: Conn[] = []
  private readonly waiting: (() => void)[] = []
  private active = 0
  private closed = false

  constructor(private readonly host: string, private readonly port: number, readonly o: ChunkGetOptions) {}

  /** Sends GET `path` and resolves once the head is in; the caller must consume or destroy the body. */
  async get(path: string, headers: Record<string, string>): Promise<ChunkResponse> {
    if (this.closed) throw new ChunkGetError('pool closed', 'UND_ERR_DESTROYED')
    if (this.active >= this.o.connections) await new Promise<void>(r => this.waiting.push(r))
    this.active++
    const head = `GET ${path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
    let conn = this.idle.pop()
    try {
      if (conn) {
        try {
          return await conn.send(head)
        } catch (err) {
          if (!(err instanceof ChunkGetError && err.code === 'UND_ERR_SOCKET' && conn.stale)) throw err
        }
      }
      conn = new Conn(this)
      return await conn.send(head)
    } catch (err) {
      this.release(undefined)
      throw err
    }
  }

  /** @internal a request is over: the socket goes back (reusable) or not, and the next waiter goes */
  release(conn: Conn | undefined): void {
    this.active--
    if (conn && !this.closed) this.idle.push(conn)
    this.waiting.shift()?.()
  }

  /** @internal */
  dropIdle(conn: Conn): void {
    const i = this.idle.indexOf(conn)
    if (i >= 0) this.idle.splice(i, 1)
  }

  connect(conn: Conn): net.Socket {
    return net.connect({ host: this.host, port: this.port, noDelay: true,
      onread: { buffer: () => conn.nextBuffer(), callback: (n: number, buf: Uint8Array) => conn.onRead(n, buf) } })
  }

  close(): void {
    this.closed = true
    for (const c of this.idle.splice(0)) c.kill()
  }
}

/** One socket; at most one response at a time. */
class Conn {
  private readonly sock: net.Socket
  private slab = Buffer.allocUnsafeSlow(SLAB)
  private used = 0
  private res: ChunkResponse | undefined
  private head: Buffer | undefined
  private got = false
  private timer: NodeJS.Timeout | undefined
  private idleTimer: NodeJS.Timeout | undefined
  private paused = false
  private dead = false
  private keep = true
  /** true once it served a response: a failure before any byte may be the shard's idle close */
  stale = false
  private opened: Promise<void>
  private onHead: ((r: ChunkResponse) => void) | undefined
  private onFail: ((e: Error) => void) | undefined

  constructor(private readonly pool: ChunkGetPool) {
    this.sock = pool.connect(this)
    this.opened = new Promise((resolve, reject) => {
      const t = setTimeout(() => this.kill(new ChunkGetError(`connect timed out after ${pool.o.connectTimeoutMs} ms`, 'UND_ERR_CONNECT_TIMEOUT')), pool.o.connectTimeoutMs)
      this.sock.once('connect', () => { clearTimeout(t); resolve() })
      this.sock.once('error', err => { clearTimeout(t); reject(Object.assign(new ChunkGetError(`${(err as { code?: string }).code ?? 'error'}: ${err.message}`, 'UND_ERR_SOCKET'), { cause: err })) })
      this.sock.once('close', () => { clearTimeout(t); reject(new ChunkGetError('socket closed before it connected', 'UND_ERR_SOCKET')) })
    })
    this.opened.catch(() => {})
    this.sock.on('error', err => this.fail(Object.assign(new ChunkGetError(err.message, 'UND_ERR_SOCKET'), { cause: err })))
    this.sock.on('close', () => this.fail(new ChunkGetError('other side closed', 'UND_ERR_SOCKET')))
  }

  nextBuffer(): Buffer {
    if (SLAB - this.used < MIN_FREE) {
      this.slab = Buffer.allocUnsafeSlow(SLAB)
      this.used = 0
    }
    return this.slab.subarray(this.used)
  }

  async send(head: string): Promise<ChunkResponse> {
    clearTimeout(this.idleTimer)
    this.pool.dropIdle(this)
    await this.opened
    // closed while idle or connecting (fail() ran with no request): as the shard's idle close, worth one resend
    if (this.dead) throw new ChunkGetError('socket closed before the request', 'UND_ERR_SOCKET')
    this.got = false
    this.head = undefined
    this.res = new ChunkResponse(this)
    return new Promise<ChunkResponse>((resolve, reject) => {
      this.onHead = resolve
      this.onFail = reject
      this.arm(this.pool.o.headersTimeoutMs, 'UND_ERR_HEADERS_TIMEOUT', 'headers')
      this.sock.write(head)
    })
  }

  onRead(n: number, buf: Uint8Array): boolean {
    const piece = Buffer.from(buf.buffer, buf.byteOffset, n)
    this.used += n
    this.got = true
    const res = this.res
    if (!res || this.dead) { this.kill(); return false }
    let body = piece
    if (this.onHead) {
      const all = this.head ? Buffer.concat([this.head, piece]) : piece
      const at = all.indexOf('\r\n\r\n')
      if (at < 0) {
        if (all.length > MAX_HEAD) this.fail(new ChunkGetError(`response head over ${MAX_HEAD} bytes`, 'UND_ERR_HEADERS_OVERFLOW'))
        else this.head = Buffer.from(all)
        return true
      }
      if (!this.parseHead(res, all.toString('latin1', 0, at))) return false
      body = all.subarray(at + 4)
      const h = this.onHead
      this.onHead = this.onFail = undefined
      h(res)
    }
    if (body.length > res.left) return this.fail(new ChunkGetError('more bytes than the content-length', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH')), false
    res.left -= body.length
    if (res.left === 0) {
      this.finish(res, body)
      return true
    }
    const more = res.push(body)
    if (more) this.arm(this.pool.o.bodyTimeoutMs, 'UND_ERR_BODY_TIMEOUT', 'body')
    else { clearTimeout(this.timer); this.paused = true }
    return more
  }

  private parseHead(res: ChunkResponse, text: string): boolean {
    const lines = text.split('\r\n')
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)
    if (!m) return this.fail(new ChunkGetError(`not an HTTP/1.1 response: ${JSON.stringify(lines[0]!.slice(0, 40))}`, 'UND_ERR_SOCKET')), false
    res.statusCode = Number(m[1])
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i]!.indexOf(':')
      if (c > 0) res.headers[lines[i]!.slice(0, c).trim().toLowerCase()] = lines[i]!.slice(c + 1).trim()
    }
    const len = res.headers['content-length']
    if (len === undefined || !/^\d+$/.test(len)) {
      // a body we cannot delimit (chunked): nothing of it is read, the socket is not reused
      this.keep = false
      res.left = 0
    } else res.left = res.length = Number(len)
    if ((res.headers.connection ?? '').toLowerCase() === 'close') this.keep = false
    return true
  }

  private finish(res: ChunkResponse, last: Buffer): void {
    clearTimeout(this.timer)
    this.res = undefined
    this.stale = true
    res.push(last)
    res.end()
    if (this.keep && !this.dead) {
      this.idleTimer = setTimeout(() => { this.pool.dropIdle(this); this.kill() }, this.pool.o.keepAliveMs)
      this.idleTimer.unref()
      this.pool.release(this)
    } else {
      this.kill()
      this.pool.release(undefined)
    }
  }

  resume(): void {
    if (!this.paused || this.dead) return
    this.paused = false
    this.arm(this.pool.o.bodyTimeoutMs, 'UND_ERR_BODY_TIMEOUT', 'body')
    this.sock.resume()
  }

  private arm(ms: number, code: string, what: string): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.fail(new ChunkGetError(`no ${what} bytes for ${ms} ms`, code)), ms)
  }

  /** Ends the request in flight with `err` and closes the socket. */
  private fail(err: Error): void {
    if (this.dead) return
    this.dead = true
    clearTimeout(this.timer)
    clearTimeout(this.idleTimer)
    const res = this.res
    this.res = undefined
    this.sock.destroy()
    if (this.onFail) {
      const f = this.onFail
      this.onHead = this.onFail = undefined
      // a reused socket that failed before any byte: the caller may send once more on a new one
      if (!this.got && err instanceof ChunkGetError) this.stale = this.stale && err.code === 'UND_ERR_SOCKET'
      else this.stale = false
      f(err)
      return
    }
    if (res) {
      res.end(err)
      this.pool.release(undefined)
    } else this.pool.dropIdle(this)
  }

  kill(err?: Error): void {
    this.fail(err ?? new ChunkGetError('closed', 'UND_ERR_SOCKET'))
  }
}
