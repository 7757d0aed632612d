import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { blockCrcs } from '../../lib/integrity/block-hasher.js'
import { chunkLength, type Manifest } from '../../lib/manifest.js'
import { parseRange } from '../../lib/http/range.js'
import { manifestFor, type TitleOptions } from './titles.js'

/**
 * A test upstream speaking the router's edge-facing contract
 *   GET /v1/content/{id}/meta, GET /v1/content/{id}/chunks/{index} (Range → 206),
 *   GET /v1/content/{id}/chunks/{index}/crcs (the block list, for titles added with `blocks: true`),
 *   GET /v1/content/{id}/r/{rid}/chunks/{index}[/crcs] (an adaptive title's renditions: `addAdaptive`)
 * over titles held in memory, with faults a test can inject per chunk and
 * barriers to order events without sleeping. A chunk is named by its file and
 * index: the file is a contentId, or `contentId/rid` for a rendition (as the
 * edge names them), so `hold('film/v360', 2, 0)` holds chunk 2 of rendition
 * v360; counting by a bare contentId (`requests('film')`) takes all its files.
 *   hold(id, i, atByte)  send `atByte` bytes, then wait for release(id, i); held(id, i) resolves when it waits
 *   hang(id, i)          never answer (the edge's timeouts must fire)
 *   reset(id, i, at)     destroy the connection after `at` body bytes
 *   resetEvery           destroy the connection after that many body bytes of each request
 *   corrupt(id, i)       flip one byte in the body while the headers claim the right digest
 *   status               answer the chunk request with this error status (502, 503: the router's own failures)
 *   throttle(bps)        pace every chunk body at `bps` bytes per second
 *   requested(n, id?, i?) resolves once n chunk requests (matching) have arrived
 *   crcsFault(f)         the next `f.times` block-list requests (all, if unset) hang or answer `f.status`
 *   holdMeta()           manifest answers wait until the release it returns is called
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
  /** the rendition, for a rendition's chunk */
  rid?: string | undefined
  index: number
  range: string | undefined
}

interface Title {
  manifest: Manifest
  bytes: Buffer
  /** an adaptive title's rendition files */
  files?: Map<string, Buffer>
}

/** One file of a title, as the routes address it. */
interface FileRef {
  name: string
  bytes: Buffer
  chunkSize: number
  chunks: readonly string[]
  blocks: readonly string[] | undefined
  size: number
}

function matches(r: ChunkRequest, file: string | undefined, index: number | undefined): boolean {
  return (file === undefined || r.contentId === file || (r.rid !== undefined && `${r.contentId}/${r.rid}` === file))
    && (index === undefined || r.index === index)
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
  /** what every manifest answer waits for (holdMeta) */
  private metaGate: Promise<void> | undefined
  private crcsFaults: { hang?: boolean; status?: number; times?: number } | undefined
  /** what GET /v1/trending answers (the edge's prefill asks it); unset: 404 */
  trending: { titles: { contentId: string; plays: number; positions?: number[] | null }[] } | undefined
  /** a real router's URL: the playback API's demand and trending (POST /v1/demand, GET /v1/trending) are passed to it */
  relayTo: string | undefined
  /** what POST /v1/edges/heartbeat answers, given the heartbeat (issue 17's site reply: test/helpers/site.ts); unset: 404 */
  heartbeat: ((hb: { id: string; url: string }) => unknown) | undefined
  /** what GET /v1/play/{id} answers (with CORS, as the router does for a watch page on another origin), by id; unset: 404 */
  readonly play = new Map<string, unknown>()
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

  /**
   * An adaptive title: `manifest` lists its renditions (test/helpers/edge-ladder.ts builds one), `files`
   * their bytes by rendition id. Its chunks are served under /r/{rid}/.
   */
  addAdaptive(manifest: Manifest, files: ReadonlyMap<string, Buffer>): void {
    this.titles.set(manifest.contentId, { manifest, bytes: Buffer.alloc(0), files: new Map(files) })
  }

  async removeTitle(contentId: string): Promise<void> {
    this.titles.delete(contentId)
  }

  fault(contentId: string, index: number, f: Fault): void {
    this.faults.set(`${contentId}/${index}`, f)
  }

  /** Manifest answers wait until the returned release is called. */
  holdMeta(): () => void {
    let release!: () => void
    this.metaGate = new Promise(r => { release = r })
    return () => { this.metaGate = undefined; release() }
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

  /** Chunk requests so far, optionally of one title or file (`contentId/rid`), or one chunk of it. */
  requests(contentId?: string, index?: number): number {
    return this.log.filter(r => matches(r, contentId, index)).length
  }

  /** Resolves once `n` chunk requests (of one title, file or chunk, if given) have arrived. */
  requested(n: number, contentId?: string, index?: number): Promise<void> {
    const match = (r: ChunkRequest) => matches(r, contentId, index)
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
    // the play API is public: a viewer's browser asks it
    const play = /^\/v1\/play\/([^/?]+)/.exec(req.url ?? '')
    if (play !== null && this.play.has(play[1]!)) {
      const text = JSON.stringify(this.play.get(play[1]!))
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'access-control-allow-origin': '*' })
      return void res.end(text)
    }
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) return error(res, 401, 'CDN_ERR_UNAUTHORIZED', 'missing or invalid bearer token')
    if (this.heartbeat !== undefined && req.method === 'POST' && req.url === '/v1/edges/heartbeat') {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const text = JSON.stringify(this.heartbeat(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string; url: string }) ?? {})
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      return void res.end(text)
    }
    if (this.relayTo !== undefined && (req.url === '/v1/demand' || req.url?.startsWith('/v1/trending?'))) return this.relay(req, res, this.relayTo)
    if (this.trending !== undefined && req.method === 'GET' && req.url?.startsWith('/v1/trending?')) {
      // the first `limit` titles, as the router answers
      const limit = Number(new URLSearchParams(req.url.split('?')[1]).get('limit') ?? Infinity)
      const text = JSON.stringify({ window: '24h', ...this.trending, titles: this.trending.titles.slice(0, limit) })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      return void res.end(text)
    }
    const m = /^\/v1\/content\/([^/]+)\/(meta|(?:r\/([^/]+)\/)?chunks\/(\d+)(\/crcs)?)$/.exec(req.url ?? '')
    if (!m || req.method !== 'GET') return error(res, 404, 'CDN_ERR_NOT_FOUND', `route ${req.url} not found`)
    const title = this.titles.get(m[1]!)
    const rid = m[3]
    const file = this.file(title, m[1]!, rid)
    if (m[5] !== undefined) return this.crcs(res, file, rid === undefined ? m[1]! : `${m[1]}/${rid}`, Number(m[4]))
    if (m[2] === 'meta') {
      this.metaLog.push(m[1]!)
      await this.metaGate
      if (!title) return error(res, 404, 'CDN_ERR_NOT_FOUND', `title ${m[1]} not found`)
      const body = JSON.stringify(title.manifest)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      return void res.end(body)
    }
    const index = Number(m[4])
    const entry: ChunkRequest = { contentId: m[1]!, ...(rid === undefined ? {} : { rid }), index, range: req.headers.range }
    this.log.push(entry)
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!
      if (this.log.filter(w.match).length >= w.n) { this.waiters.splice(i, 1); w.resolve() }
    }
    const name = rid === undefined ? m[1]! : `${m[1]}/${rid}`
    if (!file || index >= file.chunks.length) return error(res, 404, 'CDN_ERR_NOT_FOUND', `chunk ${name}/${index} not found`)
    const key = `${name}/${index}`
    const fault = this.faults.get(key) ?? {}
    if (fault.once) this.faults.delete(key)
    if (fault.hang) return // never answer; close() cuts it
    if (fault.status !== undefined) return error(res, fault.status, 'CDN_ERR_UPSTREAM', `the upstream's own upstream failed (${fault.status})`)
    const cs = file.chunkSize
    let chunk = file.bytes.subarray(index * cs, index * cs + chunkLength(file, index))
    if (fault.corrupt) {
      chunk = Buffer.from(chunk)
      chunk[chunk.length >> 1]! ^= 0xff
    }
    const ranges = parseRange(req.headers.range, chunk.length)
    if (ranges === 'unsatisfiable') return error(res, 416, 'CDN_ERR_RANGE', 'range not satisfiable', { 'content-range': `bytes */${chunk.length}` })
    const r = ranges === null ? { start: 0, end: chunk.length - 1 } : ranges[0]!
    const sha = file.chunks[index]!
    res.writeHead(ranges === null ? 200 : 206, {
      'content-type': 'application/octet-stream', 'content-length': r.end - r.start + 1, etag: `"${sha}"`, 'repr-digest': digestHeader(sha),
      ...(ranges === null ? {} : { 'content-range': `bytes ${r.start}-${r.end}/${chunk.length}` }),
    })
    res.flushHeaders() // a hold at byte 0 still sends the headers
    await this.body(res, key, chunk, r.start, r.end + 1, fault.resetEvery === undefined ? fault : { ...fault, resetAt: r.start + fault.resetEvery })
  }

  private async relay(req: IncomingMessage, res: ServerResponse, to: string): Promise<void> {
    const parts: Buffer[] = []
    for await (const c of req) parts.push(c as Buffer)
    const ans = await request(`${to}${req.url}`, { method: req.method as 'GET' | 'POST', body: parts.length ? Buffer.concat(parts) : undefined,
      headers: { ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) } })
    const body = Buffer.from(await ans.body.arrayBuffer())
    res.writeHead(ans.statusCode, { 'content-type': String(ans.headers['content-type'] ?? 'application/json'), 'content-length': body.length })
    res.end(body)
  }

  /** The title's own file, or its rendition `rid`; undefined if it has no such file. */
  private file(title: Title | undefined, contentId: string, rid: string | undefined): FileRef | undefined {
    if (title === undefined) return undefined
    const m = title.manifest
    if (rid === undefined) return { name: contentId, bytes: title.bytes, chunkSize: m.chunkSize, chunks: m.chunks, blocks: m.blocks, size: m.size }
    const r = m.renditions?.find(x => x.id === rid)
    const bytes = title.files?.get(rid)
    if (r === undefined || bytes === undefined) return undefined
    return { name: `${contentId}/${rid}`, bytes, chunkSize: m.chunkSize, chunks: r.chunks, blocks: r.blocks, size: r.size }
  }

  private crcs(res: ServerResponse, file: FileRef | undefined, name: string, index: number): void {
    this.crcsLog.push(`${name}/${index}`)
    const f = this.crcsFaults
    if (f !== undefined) {
      if (f.times !== undefined && --f.times <= 0) this.crcsFaults = undefined
      if (f.hang) return // never answer; close() cuts it
      if (f.status !== undefined) return error(res, f.status, 'CDN_ERR_UPSTREAM', `the upstream's own upstream failed (${f.status})`)
    }
    if (!file || index >= file.chunks.length || !file.blocks) return error(res, 404, 'CDN_ERR_NOT_FOUND', `the block list of ${name}/${index} not found`)
    const cs = file.chunkSize
    const crcs = blockCrcs(file.bytes.subarray(index * cs, index * cs + chunkLength(file, index)))
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': crcs.length, etag: `"${file.chunks[index]}"` })
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
