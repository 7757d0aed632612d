import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { digestHeader } from '../../lib/digest.js'
import { blockCrcs } from '../../lib/block-hasher.js'
import { chunkLength, type Manifest } from '../../lib/manifest.js'
import { parseRange } from '../../lib/range.js'
import { manifestFor, type TitleOptions } from './titles.js'

/**
 * A test upstream speaking the router's edge-facing contract
 *   GET /v1/content/{id}/meta, GET /v1/content/{id}/chunks/{index} (Range → 206),
 *   GET /v1/content/{id}/chunks/{index}/crcs (the block list, for titles added with `blocks: true`)
 * over titles held in memory, with faults a test can inject per chunk and
 * barriers to order events without sleeping:
 *   hold(id, i, atByte)  send `atByte` bytes, then wait for release(id, i); held(id, i) resolves when it waits
 *   hang(id, i)          never answer (the edge's timeouts must fire)
 *   reset(id, i, at)     destroy the connection after `at` body bytes
 *   resetEvery           destroy the connection after that many body bytes of each request
 *   corrupt(id, i)       flip one byte in the body while the headers claim the right digest
 *   status               answer the chunk request with this error status (502, 503: the router's own failures)
 *   throttle(bps)        pace every chunk body at `bps` bytes per second
 *   requested(n, id?, i?) resolves once n chunk requests (matching) have arrived
 *   crcsFault(f)         the next `f.times` block-list requests (all, if unset) hang or answer `f.status`
 * `log` lists every chunk request (with its Range), `sent(id, i)` the body bytes written.
 */
export interface Fault {
  holdAt?: number
  hang?: boolean
  resetAt?: number
  /** destroy the connection after this many body bytes of every request (a flaky upstream that gets somewhere each time) */
  resetEvery?: number
  corrupt?: boolean
  status?: number
  /** applies to the next request only, then the fault is cleared */
  once?: boolean
}

export interface ChunkRequest {
  contentId: string
  index: number
  range: string | undefined
}

interface Title {
  manifest: Manifest
  bytes: Buffer
}

export class FakeUpstream {
  readonly log: ChunkRequest[] = []
  readonly metaLog: string[] = []
  /** block-list requests, as `id/index` */
  readonly crcsLog: string[] = []
  private readonly titles = new Map<string, Title>()
  private readonly faults = new Map<string, Fault>()
  private readonly gates = new Map<string, { released: Promise<void>; release: () => void; waiting: (() => void)[]; holding: number }>()
  private readonly sentBytes = new Map<string, number>()
  private readonly waiters: { n: number; match: (r: ChunkRequest) => boolean; resolve: () => void }[] = []
  private bytesPerSec = 0
  private crcsFaults: { hang?: boolean; status?: number; times?: number } | undefined
  /** what GET /v1/trending answers (the edge's prefill asks it); unset: 404 */
  trending: { titles: { contentId: string; plays: number; positions?: number[] | null }[] } | undefined
  url = ''

  private constructor(private readonly server: http.Server, readonly token: string | undefined) {}

  static async start(opts: { token?: string } = {}): Promise<FakeUpstream> {
    let up!: FakeUpstream
    const server = http.createServer((req, res) => { void up.handle(req, res).catch(() => res.destroy()) })
    up = new FakeUpstream(server, opts.token)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    return up
  }

  async addTitle(contentId: string, bytes: Buffer, opts: TitleOptions): Promise<Manifest> {
    const manifest = manifestFor(contentId, bytes, opts)
    this.titles.set(contentId, { manifest, bytes })
    return manifest
  }

  async removeTitle(contentId: string): Promise<void> {
    this.titles.delete(contentId)
  }

  fault(contentId: string, index: number, f: Fault): void {
    this.faults.set(`${contentId}/${index}`, f)
  }

  hold(contentId: string, index: number, atByte: number): void {
    this.fault(contentId, index, { holdAt: atByte })
  }

  /** Resolves when a response of this chunk is waiting at its hold point. */
  held(contentId: string, index: number): Promise<void> {
    const g = this.gate(`${contentId}/${index}`)
    return new Promise(resolve => { if (g.holding > 0) resolve(); else g.waiting.push(resolve) })
  }

  release(contentId: string, index: number): void {
    this.gate(`${contentId}/${index}`).release()
    this.faults.delete(`${contentId}/${index}`)
  }

  crcsFault(f: { hang?: boolean; status?: number; times?: number } | undefined): void {
    this.crcsFaults = f === undefined ? undefined : { ...f }
  }

  throttle(bytesPerSec: number): void {
    this.bytesPerSec = bytesPerSec
  }

  /** Chunk requests so far, optionally of one chunk. */
  requests(contentId?: string, index?: number): number {
    return this.log.filter(r => (contentId === undefined || r.contentId === contentId) && (index === undefined || r.index === index)).length
  }

  /** Resolves once `n` chunk requests (of one title or chunk, if given) have arrived. */
  requested(n: number, contentId?: string, index?: number): Promise<void> {
    const match = (r: ChunkRequest) => (contentId === undefined || r.contentId === contentId) && (index === undefined || r.index === index)
    return new Promise(resolve => {
      if (this.log.filter(match).length >= n) return resolve()
      this.waiters.push({ n, match, resolve })
    })
  }

  sent(contentId: string, index: number): number {
    return this.sentBytes.get(`${contentId}/${index}`) ?? 0
  }

  async close(): Promise<void> {
    for (const g of this.gates.values()) g.release()
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  private gate(key: string) {
    let g = this.gates.get(key)
    if (!g) {
      let release!: () => void
      const released = new Promise<void>(r => { release = r })
      g = { released, release: () => { this.gates.delete(key); release() }, waiting: [], holding: 0 }
      this.gates.set(key, g)
    }
    return g
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) return error(res, 401, 'CDN_ERR_UNAUTHORIZED', 'missing or invalid bearer token')
    if (this.trending !== undefined && req.method === 'GET' && req.url?.startsWith('/v1/trending?')) {
      const text = JSON.stringify({ window: '24h', ...this.trending })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      return void res.end(text)
    }
    const m = /^\/v1\/content\/([^/]+)\/(meta|chunks\/(\d+)(\/crcs)?)$/.exec(req.url ?? '')
    if (!m || req.method !== 'GET') return error(res, 404, 'CDN_ERR_NOT_FOUND', `route ${req.url} not found`)
    const title = this.titles.get(m[1]!)
    if (m[4] !== undefined) return this.crcs(res, title, m[1]!, Number(m[3]))
    if (m[2] === 'meta') {
      this.metaLog.push(m[1]!)
      if (!title) return error(res, 404, 'CDN_ERR_NOT_FOUND', `title ${m[1]} not found`)
      const body = JSON.stringify(title.manifest)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      return void res.end(body)
    }
    const index = Number(m[3])
    const entry: ChunkRequest = { contentId: m[1]!, index, range: req.headers.range }
    this.log.push(entry)
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!
      if (this.log.filter(w.match).length >= w.n) { this.waiters.splice(i, 1); w.resolve() }
    }
    if (!title || index >= title.manifest.chunks.length) return error(res, 404, 'CDN_ERR_NOT_FOUND', `chunk ${m[1]}/${index} not found`)
    const key = `${m[1]}/${index}`
    const fault = this.faults.get(key) ?? {}
    if (fault.once) this.faults.delete(key)
    if (fault.hang) return // never answer; close() cuts it
    if (fault.status !== undefined) return error(res, fault.status, 'CDN_ERR_UPSTREAM', `the upstream's own upstream failed (${fault.status})`)
    const cs = title.manifest.chunkSize
    let chunk = title.bytes.subarray(index * cs, index * cs + chunkLength(title.manifest, index))
    if (fault.corrupt) {
      chunk = Buffer.from(chunk)
      chunk[chunk.length >> 1]! ^= 0xff
    }
    const ranges = parseRange(req.headers.range, chunk.length)
    if (ranges === 'unsatisfiable') return error(res, 416, 'CDN_ERR_RANGE', 'range not satisfiable', { 'content-range': `bytes */${chunk.length}` })
    const r = ranges === null ? { start: 0, end: chunk.length - 1 } : ranges[0]!
    const sha = title.manifest.chunks[index]!
    res.writeHead(ranges === null ? 200 : 206, {
      'content-type': 'application/octet-stream', 'content-length': r.end - r.start + 1, etag: `"${sha}"`, 'repr-digest': digestHeader(sha),
      ...(ranges === null ? {} : { 'content-range': `bytes ${r.start}-${r.end}/${chunk.length}` }),
    })
    res.flushHeaders() // a hold at byte 0 still sends the headers
    await this.body(res, key, chunk, r.start, r.end + 1, fault.resetEvery === undefined ? fault : { ...fault, resetAt: r.start + fault.resetEvery })
  }

  private crcs(res: ServerResponse, title: Title | undefined, contentId: string, index: number): void {
    this.crcsLog.push(`${contentId}/${index}`)
    const f = this.crcsFaults
    if (f !== undefined) {
      if (f.times !== undefined && --f.times <= 0) this.crcsFaults = undefined
      if (f.hang) return // never answer; close() cuts it
      if (f.status !== undefined) return error(res, f.status, 'CDN_ERR_UPSTREAM', `the upstream's own upstream failed (${f.status})`)
    }
    if (!title || index >= title.manifest.chunks.length || !title.manifest.blocks) return error(res, 404, 'CDN_ERR_NOT_FOUND', `the block list of ${contentId}/${index} not found`)
    const cs = title.manifest.chunkSize
    const crcs = blockCrcs(title.bytes.subarray(index * cs, index * cs + chunkLength(title.manifest, index)))
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': crcs.length, etag: `"${title.manifest.chunks[index]}"` })
    res.end(crcs)
  }

  private async body(res: ServerResponse, key: string, chunk: Buffer, from: number, to: number, fault: Fault): Promise<void> {
    const PIECE = 16 * 1024
    let off = from
    while (off < to) {
      if (off === fault.holdAt) {
        const g = this.gate(key)
        g.holding++
        for (const w of g.waiting.splice(0)) w()
        await g.released
        if (res.destroyed) return
      }
      if (fault.resetAt !== undefined && off >= fault.resetAt) return void res.socket?.destroy()
      let n = Math.min(PIECE, to - off)
      if (fault.holdAt !== undefined && off < fault.holdAt) n = Math.min(n, fault.holdAt - off)
      if (fault.resetAt !== undefined && off < fault.resetAt) n = Math.min(n, fault.resetAt - off)
      const ok = res.write(chunk.subarray(off, off + n))
      off += n
      this.sentBytes.set(key, (this.sentBytes.get(key) ?? 0) + n)
      if (res.destroyed) return
      if (!ok) await drainOrClose(res)
      if (this.bytesPerSec > 0) await sleep(Math.ceil((n / this.bytesPerSec) * 1000))
    }
    res.end()
  }
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise(resolve => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}

function error(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code, message } })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers })
  res.end(body)
}
