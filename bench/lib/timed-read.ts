import { readFile } from 'node:fs/promises'
import net from 'node:net'
import { cpuSeconds } from './proc.js'
import type { WrkResult } from './wrk.js'

/**
 * One client reading a list of URLs in order, each body to its end, timed,
 * with the CPU every named process used meanwhile: the fill row's generator.
 * A fill is one long sequential read (a cold title with one GET, or its chunks
 * one after another), which wrk's fixed-duration loops do not model, so the row
 * reads from the bench's own process, the same client for every server it
 * compares. Bodies are checked as they stream by, cheaply: the length, and
 * the block number TitleData stamps at the start of every 1 MiB (a wrong,
 * shifted or reordered block fails the run), not a hash.
 *
 * The client is a plain socket, not an HTTP library: every read lands in one
 * 1 MiB buffer of its own (the socket's `onread`), so reading a body
 * allocates nothing (a response's head is copied out) and the kernel's copy
 * is most of what it costs. Until 2026-12-07 (stop 37) it was undici, which
 * hands each socket read over as a fresh Buffer through a stream: on the
 * fill row the reference read (shard-1, chunk by chunk) took 0.92–1.32
 * cores of the bench process (its collector's threads included) at
 * 525–2,330 MB/s while the shard used 0.22–0.67, and it was slowest where
 * the client was busiest: the generator's limit, passing for the shard's,
 * and the row's ratios moved with it (docs/benchmarks.md, "The fill row's
 * generator").
 * It speaks what the row needs of HTTP/1.1: a GET, a 200/206 body framed by
 * Content-Length (anything else fails the run with the status and the start
 * of the body), one kept connection, replaced when the origin changes.
 *
 * The result is a WrkResult, so the report prints it like wrk's: `server` is
 * the CPU of `pids`, `client` the bench process's own, `other` the rest of
 * the machine; `extra` the CPU of `also` (e.g. the origin side of an edge
 * fill), in cores.
 */
const BLOCK = 1024 * 1024

export interface ReadTarget {
  url: string
  /** title offset of the body's first byte (for the block stamps) */
  offset: number
  /** body bytes expected */
  length: number
  headers?: Record<string, string>
}

export interface TimedRead extends WrkResult {
  /** cores `also` used */
  extra: number
}

export async function timedRead(targets: ReadTarget[], pids: number[], also: number[], ticks: number): Promise<TimedRead> {
  const conn = new RawGets()
  const sum = async (ps: number[]) => (await Promise.all(ps.map(p => cpuSeconds(p, ticks)))).reduce((a, b) => a + b, 0)
  try {
    const [s0, a0, m0] = await Promise.all([sum(pids), sum(also), machineTicks()])
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let bytes = 0
    for (const t of targets) {
      const got = await conn.get(t.url, t.headers ?? {}, stampCheck(t))
      if (got !== t.length) throw new Error(`GET ${t.url}: ${got} bytes, expected ${t.length}`)
      bytes += t.length
    }
    const seconds = (performance.now() - t0) / 1000
    const c = process.cpuUsage(c0)
    const [s1, a1, m1] = await Promise.all([sum(pids), sum(also), machineTicks()])
    const client = (c.user + c.system) / 1e6 / seconds
    const server = (s1 - s0) / seconds
    const machine = (m1.busy - m0.busy) / ticks / seconds
    const ms = seconds * 1000 / targets.length
    return {
      requests: targets.length, bytes, seconds, reqPerSec: targets.length / seconds, MBps: bytes / seconds / 1e6,
      latencyMs: { mean: ms, p50: ms, p90: ms, p99: ms, max: ms },
      errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
      cpu: { client, server, other: Math.max(0, machine - client - server), machine },
      extra: (a1 - a0) / seconds,
    }
  } finally {
    conn.close()
  }
}

/** Checks the block stamps of a target's body as its pieces pass (title offset `t.offset` first). */
function stampCheck(t: ReadTarget): (piece: Buffer) => void {
  let at = t.offset
  return piece => {
    // every 1 MiB block that starts in this piece carries its number
    const first = Math.ceil(at / BLOCK) * BLOCK
    for (let b = first; b + 4 <= at + piece.length; b += BLOCK) {
      if (piece.readUInt32BE(b - at) !== b / BLOCK) throw new Error(`GET ${t.url}: wrong bytes at title offset ${b}`)
    }
    at += piece.length
  }
}

const HEAD_MAX = 64 * 1024

/** The answer being read: its head's bytes so far (copied: the next read reuses the buffer), then its body's. */
interface Answer {
  head: Buffer[]
  status: number
  /** body bytes still to come; -1 until the head is in */
  left: number
  /** a refusal's body, its first 300 bytes */
  text: Buffer[]
  keep: boolean
  /** a byte of the answer arrived: a failure after that is not a kept connection the server let go */
  answered: boolean
  onPiece: (p: Buffer) => void
  done: (err?: Error) => void
}
const TIMEOUT_MS = 60_000

/**
 * GETs on one kept connection (replaced when the origin changes), one at a
 * time, each body handed to `onPiece` as views of the one read buffer (valid
 * until the callback returns). A request on a kept connection that closes or
 * resets before any byte of its answer (the server let it go meanwhile) is
 * sent once more on a new one, as HTTP clients do for a GET.
 */
export class RawGets {
  private sock: net.Socket | undefined
  private origin = ''
  private readonly buf = Buffer.allocUnsafeSlow(1024 * 1024)
  private cur: Answer | undefined

  /** GETs `url`; resolves with the body's length once it has all passed `onPiece`, rejects on a non-2xx, a cut or a timeout. */
  async get(url: string, headers: Record<string, string>, onPiece: (p: Buffer) => void): Promise<number> {
    const u = new URL(url)
    if (u.protocol !== 'http:') throw new Error(`GET ${url}: only http: URLs are read`)
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    for (let attempt = 1; ; attempt++) {
      let length = 0
      try {
        const reused = this.sock !== undefined && this.origin === u.host
        if (!reused) {
          this.close()
          this.sock = await this.connect(u)
          this.origin = u.host
        }
        const sock = this.sock!
        let answer!: Answer
        const done = new Promise<void>((resolve, reject) => {
          answer = { head: [], status: 0, left: -1, text: [], keep: true, answered: false,
            onPiece: p => { length += p.length; onPiece(p) },
            done: err => { this.cur = undefined; if (err) reject(err); else resolve() } }
        })
        this.cur = answer
        sock.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n${extra}\r\n`)
        try {
          await done
        } catch (err) {
          this.close()
          if (reused && !answer.answered && attempt === 1) continue
          throw err
        }
        return length
      } catch (err) {
        throw new Error(`GET ${url}: ${(err as Error).message}`)
      }
    }
  }

  close(): void {
    this.sock?.destroy()
    this.sock = undefined
  }

  private connect(u: URL): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 80), noDelay: true,
        onread: { buffer: this.buf, callback: (n: number, b: Uint8Array) => {
          if (this.sock === sock) this.landed(Buffer.from(b.buffer, b.byteOffset, n))
          return true
        } } })
      sock.setTimeout(TIMEOUT_MS, () => sock.destroy(new Error(`no byte for ${TIMEOUT_MS} ms`)))
      sock.once('connect', () => resolve(sock))
      // only the connection in use fails the answer being read: an older one's end is no news
      sock.once('error', err => { reject(err); if (this.sock === sock) this.cur?.done(err) })
      sock.once('close', () => {
        if (this.sock !== sock) return
        this.sock = undefined
        this.cur?.done(new Error('the connection closed before the body\'s end'))
      })
    })
  }

  private landed(bytes: Buffer): void {
    const c = this.cur
    if (c === undefined) {
      // bytes no request asked for: the connection is out of step
      this.close()
      return
    }
    c.answered = true
    let rest = bytes
    while (c.left < 0) {
      // the head: looked for in the read itself when it starts there, else in what came before it too
      const all = c.head.length === 0 ? rest : Buffer.concat([...c.head, rest])
      const at = all.indexOf('\r\n\r\n')
      if (at < 0) {
        c.head = [Buffer.from(all)]
        if (all.length > HEAD_MAX) c.done(new Error(`a response head over ${HEAD_MAX} bytes`))
        return
      }
      c.head = []
      const lines = all.toString('latin1', 0, at).split('\r\n')
      const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!)
      rest = all.subarray(at + 4)
      // an interim answer (100 Continue, 103 Early Hints): its head goes, the answer follows
      if (status !== null && status[2]!.startsWith('1')) continue
      const fields = new Map(lines.slice(1).map(l => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
      const len = Number(fields.get('content-length'))
      if (status === null || fields.has('transfer-encoding') || !fields.has('content-length') || !Number.isSafeInteger(len) || len < 0) {
        // a refusal framed otherwise (chunked, or to the close) still fails with its status and what came of its body
        if (status !== null && status[2] !== '200' && status[2] !== '206') return c.done(new Error(`${status[2]} ${rest.toString('utf8', 0, 300)}`))
        return c.done(new Error(`an answer without a Content-Length framed body: ${lines[0]!.slice(0, 80)}`))
      }
      c.status = Number(status[2])
      c.left = len
      const conn = fields.get('connection') ?? ''
      // HTTP/1.0 keeps a connection only when it says so
      c.keep = status[1] === '1' ? !/close/i.test(conn) : /keep-alive/i.test(conn)
    }
    if (rest.length > c.left) return c.done(new Error('bytes past the body\'s end'))
    c.left -= rest.length
    try {
      if (c.status === 200 || c.status === 206) {
        if (rest.length > 0) c.onPiece(rest)
      } else if (rest.length > 0) c.text.push(Buffer.from(rest.subarray(0, Math.max(0, 300 - c.text.reduce((n, b) => n + b.length, 0)))))
    } catch (err) {
      return c.done(err as Error)
    }
    if (c.left > 0) return
    if (c.status !== 200 && c.status !== 206) return c.done(new Error(`${c.status} ${Buffer.concat(c.text).toString('utf8')}`))
    if (!c.keep) this.close()
    c.done()
  }
}

async function machineTicks(): Promise<{ busy: number }> {
  const v = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return { busy: v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3]! - v[4]! }
}
