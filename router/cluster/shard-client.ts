import { Pool, type Dispatcher } from 'undici'
import type { Readable } from 'node:stream'
import type { Config } from '../../lib/config/config.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { CdnError, UpstreamError, UpstreamTimeoutError } from '../../lib/errors.js'
import { ShardReads, type ShardBody } from '../../lib/http/shard-read.js'
import type { Cancel } from '../../lib/cancel.js'
import { Line } from '../../lib/line.js'
import { digestHeader } from '../../lib/integrity/digest.js'
import { chunkKey, etagOf } from './keys.js'
import { shardRefusal } from '../errors.js'
import type { RepairReport } from '../repair/repair-report.js'

/**
 * One origin shard, as the router talks to it: a keep-alive undici Pool with
 * timeouts on connect, headers and body silence, and the shard API as typed
 * calls. Transport failures become UpstreamError / UpstreamTimeoutError
 * (retryable), refusals keep the shard's status and code (router/errors.ts).
 *
 * `outstanding` counts requests whose response is not yet consumed: reads are
 * spread over owners by it. It drops when a response body ends or is
 * destroyed, so a body still being streamed to a client keeps counting.
 *
 * The relay's chunk bytes from an http: shard come another way: its own
 * keep-alive connections whose socket reads land straight in the memory the
 * caller names (`readChunkInto`, lib/http/shard-read.ts), with no copy and no
 * Buffer per read (router/read/shard-windows.ts says why).
 */
export interface ShardSpec {
  id: string
  url: string
  weight: number
  /** where edges read this shard's chunks under a fill grant, when it differs from `url` (cluster.shards[].fillUrl) */
  fillUrl?: string | undefined
}

export interface ChunkInfo {
  contentId: string
  index: number
  size: number
  sha256: string
  state: 'ok' | 'corrupt'
  createdAt: number
}

export interface ShardStatus {
  chunks: { ok: number; corrupt: number }
  storedBytes: number
  disk: { capacityBytes: number; freeBytes: number; reserveBytes: number }
  /** the last repair pass's report left on this shard, by whoever ran it (absent on shards from before) */
  lastRepair?: RepairReport | null
  /** how long before this answer the shard received lastRepair, by its own clock (absent on shards from before) */
  lastRepairAgeMs?: number | null
}

type Upstream = Config['router']['upstream']
type Req = Omit<Dispatcher.RequestOptions, 'path' | 'method'> & { path: string; method: Dispatcher.HttpMethod }

export class ShardClient {
  outstanding = 0
  readonly id: string
  private readonly pool: Pool
  private readonly auth: Record<string, string>
  /** the zero-copy reader of chunk bytes; undefined for an https: shard (read through the pool) */
  readonly reads: ShardReads | undefined
  /** relay windows holding a connection of `reads`, at most up.connections (readSlot) */
  private slotsUsed = 0
  private readonly slotLine = new Line<void>()

  constructor(readonly spec: ShardSpec, private readonly up: Upstream, private readonly metrics: RouterMetrics, token?: string,
    /** told the chunk key of every chunk this shard took (a PUT answered 2xx) */
    private readonly onStored?: (key: string) => void) {
    this.id = spec.id
    this.pool = new Pool(spec.url, {
      connections: up.connections,
      connectTimeout: up.connectTimeoutMs,
      headersTimeout: up.headersTimeoutMs,
      bodyTimeout: up.bodyTimeoutMs,
      keepAliveTimeout: 4000,
    })
    this.auth = token ? { authorization: `Bearer ${token}` } : {}
    this.reads = spec.url.startsWith('http:')
      ? new ShardReads(spec.url, { connections: up.connections, headersTimeoutMs: up.headersTimeoutMs, idleTimeoutMs: up.bodyTimeoutMs })
      : undefined
  }

  /** Sends a request; the caller must consume or destroy the body. Non-2xx answers come back as they are. */
  async request(op: string, r: Req): Promise<Dispatcher.ResponseData> {
    this.outstanding++
    let res: Dispatcher.ResponseData
    try {
      res = await this.pool.request({ ...r, headers: { ...this.auth, ...(r.headers as Record<string, string>) } })
    } catch (err) {
      this.outstanding--
      const e = translate(this.id, op, err)
      // a request its caller dropped (a relay read whose client left) is not the shard's failure
      if (!(r.signal as AbortSignal | undefined)?.aborted) this.metrics.upstream.inc({ shard: this.id, op, result: e instanceof UpstreamTimeoutError ? 'timeout' : 'error' })
      throw e
    }
    this.metrics.upstream.inc({ shard: this.id, op, result: `${Math.floor(res.statusCode / 100)}xx` })
    let open = true
    const done = () => { if (open) { open = false; this.outstanding-- } }
    res.body.once('end', done).once('close', done)
    return res
  }

  /**
   * Like request, but reads the whole (small) body and turns non-2xx answers other than `allow` into errors.
   * A 2xx answer announcing more than `maxBytes` is refused unread.
   */
  private async call(op: string, r: Req, allow: number[] = [], maxBytes = Infinity): Promise<{ status: number; headers: Dispatcher.ResponseData['headers']; body: Buffer; text: string }> {
    const res = await this.request(op, r)
    if (res.statusCode < 300 && Number(res.headers['content-length'] ?? 0) > maxBytes) {
      res.body.destroy()
      throw new UpstreamError(`shard ${this.id} announced ${res.headers['content-length']} bytes for ${op}, at most ${maxBytes} expected`)
    }
    let body: Buffer
    try {
      body = Buffer.from(await res.body.arrayBuffer())
    } catch (err) {
      throw translate(this.id, op, err)
    }
    const text = body.toString('utf8')
    if (res.statusCode >= 300 && !allow.includes(res.statusCode)) throw shardRefusal(this.id, op, res.statusCode, text, res.headers)
    return { status: res.statusCode, headers: res.headers, body, text }
  }

  /** The digest a shard holds for a chunk (its ETag), or null. A corrupt copy answers 500: reported as an error. */
  async headChunk(sid: string, index: number): Promise<string | null> {
    return (await this.chunkHead(sid, index))?.sha256 ?? null
  }

  /** headChunk with the chunk's length (its Content-Length): null when the shard has no such chunk. */
  async chunkHead(sid: string, index: number): Promise<{ sha256: string | null; size: number } | null> {
    const r = await this.call('head_chunk', { method: 'HEAD', path: `/v1/chunks/${sid}/${index}` }, [404])
    if (r.status === 404) return null
    const etag = String(r.headers.etag ?? '')
    return { sha256: etag.startsWith('"') ? etag.slice(1, -1) : null, size: Number(r.headers['content-length'] ?? -1) }
  }

  /** Stores a chunk; the shard verifies `sha256` before it makes the chunk visible. */
  async putChunk(sid: string, index: number, sha256: string, size: number, body: Buffer | Readable, signal?: AbortSignal): Promise<'created' | 'exists'> {
    const r = await this.call('put_chunk', {
      method: 'PUT', path: `/v1/chunks/${sid}/${index}`, body, signal, headersTimeout: this.up.putTimeoutMs,
      headers: { 'content-digest': digestHeader(sha256), 'content-length': String(size), 'content-type': 'application/octet-stream' },
    })
    this.onStored?.(chunkKey(sid, index))
    return r.status === 201 ? 'created' : 'exists'
  }

  /**
   * Opens bytes [start, end] of a chunk as a stream. If-Match pins the digest,
   * so a shard holding other bytes under the name answers 412, never them.
   */
  async openChunk(sid: string, index: number, sha256: string, start: number, end: number, signal?: AbortSignal): Promise<Readable> {
    const op = 'get_chunk'
    const res = await this.request(op, {
      method: 'GET', path: `/v1/chunks/${sid}/${index}`, signal,
      headers: { range: `bytes=${start}-${end}`, 'if-match': etagOf(sha256) },
    })
    if (res.statusCode !== 206) {
      if (res.statusCode < 300) {
        // a whole body we did not ask for: never read it into memory
        res.body.destroy()
        throw new UpstreamError(`shard ${this.id} answered range ${start}-${end} of ${sid}/${index} with ${res.statusCode}`)
      }
      const text = await res.body.text().catch(() => '')
      throw shardRefusal(this.id, op, res.statusCode, text, res.headers)
    }
    const cr = String(res.headers['content-range'] ?? '')
    if (!cr.startsWith(`bytes ${start}-${end}/`)) {
      res.body.destroy()
      throw new UpstreamError(`shard ${this.id} answered range ${start}-${end} of ${sid}/${index} with content-range ${JSON.stringify(cr)}`)
    }
    return res.body
  }

  /**
   * A relay window's turn on this shard's connections: at most
   * `router.upstream.connections` at once, as the HTTP client's pool allows;
   * the rest wait in order. Resolves with the release (idempotent: called
   * once the window's bytes landed, or it failed). No turn within
   * headersTimeoutMs: a timeout, and the read goes to the next owner. A
   * wait `cancel` stops (the read's client left) leaves the line at once.
   */
  async readSlot(cancel?: Cancel): Promise<() => void> {
    if (this.slotsUsed >= this.up.connections) {
      await this.slotLine.wait(1, this.up.headersTimeoutMs,
        () => new UpstreamTimeoutError(`a connection to shard ${this.id} (all ${this.up.connections} busy for ${this.up.headersTimeoutMs} ms)`), cancel)
    } else this.slotsUsed++
    let held = true
    return () => {
      if (!held) return
      held = false
      // the turn passes to the next in line, or the slot frees
      if (this.slotLine.length > 0) this.slotLine.serve()
      else this.slotsUsed--
    }
  }

  /**
   * Bytes [start, end] of a chunk read into `into` from its first byte on
   * (end - start < into.length), through `reads`; the body yields views of
   * `into` as bytes land. If-Match pins the digest, as in openChunk. Counts
   * as openChunk does; `outstanding` is the caller's (a read spans windows).
   */
  async readChunkInto(sid: string, index: number, sha256: string, start: number, end: number, into: Buffer, signal: AbortSignal | Cancel): Promise<ShardBody> {
    const op = 'get_chunk'
    const len = end - start + 1
    let a
    try {
      a = await this.reads!.get(`/v1/chunks/${sid}/${index}`, { ...this.auth, range: `bytes=${start}-${end}`, 'if-match': etagOf(sha256) },
        { buf: into, end: () => len, claim: () => {} }, 0, 206, signal)
    } catch (err) {
      const e = shardFailure(this.id, op, err)
      // a read the relay dropped (its player left, a window asked for ahead) is not the shard's failure
      if (!signal.aborted) this.metrics.upstream.inc({ shard: this.id, op, result: e instanceof UpstreamTimeoutError ? 'timeout' : 'error' })
      throw e
    }
    this.metrics.upstream.inc({ shard: this.id, op, result: `${Math.floor(a.statusCode / 100)}xx` })
    if (a.statusCode !== 206) throw shardRefusal(this.id, op, a.statusCode, await a.body.text().catch(() => ''), a.headers)
    const cr = a.headers['content-range'] ?? ''
    // the body ends at its Content-Length: a shorter one would end the window early, and the next would start past the gap
    const mismatch = !cr.startsWith(`bytes ${start}-${end}/`) ? `content-range ${JSON.stringify(cr)}`
      : a.headers['content-length'] !== String(len) ? `content-length ${JSON.stringify(a.headers['content-length'])}` : ''
    if (mismatch) {
      a.body.destroy()
      throw new UpstreamError(`shard ${this.id} answered range ${start}-${end} of ${sid}/${index} with ${mismatch}`)
    }
    return a.body
  }

  /** A chunk's packed block CRCs as the shard keeps them (unverified: the caller checks them against the manifest). */
  async chunkCrcs(sid: string, index: number, expectBytes: number): Promise<Buffer> {
    const { body } = await this.call('get_crcs', { method: 'GET', path: `/v1/chunks/${sid}/${index}/crcs` }, [], expectBytes)
    if (body.length !== expectBytes)
      throw new UpstreamError(`shard ${this.id} sent ${body.length} bytes of block CRCs for ${sid}/${index}, expected ${expectBytes}`)
    return body
  }

  async deleteChunk(sid: string, index: number): Promise<boolean> {
    const r = await this.call('delete_chunk', { method: 'DELETE', path: `/v1/chunks/${sid}/${index}` }, [404])
    return r.status === 204
  }

  async listChunks(after: string | null, limit: number): Promise<{ chunks: ChunkInfo[]; next: string | null }> {
    const q = new URLSearchParams({ limit: String(limit), ...(after ? { after } : {}) })
    return JSON.parse((await this.call('list_chunks', { method: 'GET', path: `/v1/chunks?${q}` })).text) as { chunks: ChunkInfo[]; next: string | null }
  }

  /** The manifest's JSON text and ETag, or null. */
  async getManifest(contentId: string): Promise<{ body: string; etag: string } | null> {
    const r = await this.call('get_manifest', { method: 'GET', path: `/v1/manifests/${contentId}` }, [404])
    return r.status === 404 ? null : { body: r.text, etag: String(r.headers.etag ?? '') }
  }

  /** Stores a manifest unless one is there: 'exists' means the shard holds a different one (412). */
  async putManifest(contentId: string, body: string): Promise<'created' | 'same' | 'exists'> {
    const r = await this.call('put_manifest', {
      method: 'PUT', path: `/v1/manifests/${contentId}`, body,
      headers: { 'content-type': 'application/json', 'if-none-match': '*' },
    }, [412])
    return r.status === 412 ? 'exists' : r.status === 201 ? 'created' : 'same'
  }

  async deleteManifest(contentId: string): Promise<boolean> {
    const r = await this.call('delete_manifest', { method: 'DELETE', path: `/v1/manifests/${contentId}` }, [404])
    return r.status === 204
  }

  async listManifests(after: string | null, limit: number): Promise<{ manifests: { contentId: string; etag: string }[]; next: string | null }> {
    const q = new URLSearchParams({ limit: String(limit), ...(after ? { after } : {}) })
    return JSON.parse((await this.call('list_manifests', { method: 'GET', path: `/v1/manifests?${q}` })).text) as { manifests: { contentId: string; etag: string }[]; next: string | null }
  }

  async status(timeoutMs: number): Promise<ShardStatus> {
    const r = await this.call('status', { method: 'GET', path: '/v1/status', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs * 2) })
    return JSON.parse(r.text) as ShardStatus
  }

  /** Leaves a repair pass's report on the shard, for every router to read back from its status; false if the shard kept a newer one or predates reports. */
  async putRepairReport(report: RepairReport): Promise<boolean> {
    const r = await this.call('put_repair_report', {
      method: 'PUT', path: '/v1/repair-report', body: JSON.stringify(report), headers: { 'content-type': 'application/json' },
    }, [404])
    return r.status === 200 && (JSON.parse(r.text) as { kept?: boolean }).kept === true
  }

  async close(): Promise<void> {
    this.reads?.close()
    await this.pool.destroy()
  }
}

/** A zero-copy read's failure (lib/http/shard-read.ts names no shard), named with its shard and operation. */
export function shardFailure(shard: string, op: string, err: unknown): CdnError {
  return err instanceof UpstreamTimeoutError ? new UpstreamTimeoutError(`${op} on shard ${shard}`, { cause: err })
    : new UpstreamError(`shard ${shard} failed ${op}: ${(err as Error).message}`, { cause: err })
}

/** undici and socket errors as CdnErrors, keeping the cause. */
export function translate(shard: string, op: string, err: unknown): CdnError {
  if (err instanceof CdnError) return err
  const e = err as { code?: string; message?: string; name?: string }
  if (e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT' || e?.code === 'UND_ERR_CONNECT_TIMEOUT' || e?.name === 'TimeoutError')
    return new UpstreamTimeoutError(`${op} on shard ${shard}`, { cause: err })
  return new UpstreamError(`shard ${shard} failed ${op}: ${e?.code ?? e?.name ?? 'error'}: ${e?.message ?? String(err)}`, { cause: err })
}
