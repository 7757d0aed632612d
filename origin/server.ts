import type { IncomingMessage, ServerResponse } from 'node:http'
import { statfs } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import type { Registry } from 'prom-client'
import type { Config } from '../lib/config/config.js'
import type { Logger } from '../lib/logger.js'
import { bodyOf, HttpService, queryParams, readJson, sendJson, type Match } from '../lib/http/http.js'
import { originGrantMetrics, originMetrics, type OriginGrantMetrics, type OriginMetrics } from '../lib/metrics.js'
import { fillGrantKey, grantFromHeader, GrantError, verifyGrant } from '../lib/security/fill-grant.js'
import { BadRequestError, ConflictError, CorruptChunkError, DigestMismatchError, InsufficientStorageError, NotFoundError,
  PayloadTooLargeError, PreconditionFailedError } from '../lib/errors.js'
import { chunkName, parseChunkIndex, parseContentId, parseShardKey } from '../lib/ids.js'
import { planResponse, sendPlanned } from '../lib/representation.js'
import { requireBearer, requireBearerIfSet } from '../lib/security/auth.js'
import { parseManifest } from '../lib/manifest.js'
import { digestHeader, parseContentDigest } from '../lib/integrity/digest.js'
import { blockListHead, WANT_BLOCK_LIST } from '../lib/integrity/block-list-header.js'
import { ChunkIndex, type ChunkRow } from './chunk-index.js'
import { BLOCK_SIZE, ChunkStore } from './chunk-store.js'
import { ChunkReader } from './reader.js'
import { MAX_REPAIR_REPORT_BYTES, RepairRecord } from './repair-record.js'
import { ShardConsole } from './console.js'
import { consoleRoutes } from '../lib/console/routes.js'

/** What a write or delete is answered (401) on a shard without a token. */
export const WRITES_DISABLED = 'shard writes and deletes are disabled: set REELCDN_SHARD_TOKEN or origin.tokenFile ' +
  '(or, for a test shard on loopback, origin.insecureOpenWrites / --insecure-open-writes)'

/**
 * The origin shard's HTTP API: chunk PUT/GET/HEAD/DELETE, a paged inventory,
 * manifests, status, and the last repair pass's report (repair-record.ts).
 * Chunks are immutable: a PUT either creates the chunk,
 * repeats it (200, idempotent) or conflicts (409); only DELETE removes one.
 * With a shard token every route needs it; without one, reads are open and
 * writes and deletes are refused (401), unless origin.insecureOpenWrites.
 * A chunk's reads (GET/HEAD of the chunk and of its block list) also take a
 * fill grant instead of the token, `Authorization: Grant <grant>`, signed by
 * the router for this chunk on this shard (`origin.id`): how edges read
 * straight from the owners (lib/security/fill-grant.ts, docs/fill-path.md). A refused
 * grant is a 403 naming why, counted, logged at info. A chunk GET that asks
 * for it (`reelcdn-want-block-crcs: 1`) carries the chunk's block list in its
 * head (lib/integrity/block-list-header.ts): an edge's fill checks its first
 * block with it instead of waiting for the list's own answer.
 * `GET /`, `/status` and `/status.json` are the status console (origin/console.ts; the figures need the shard token).
 */
export interface OriginDeps {
  config: Readonly<Config>
  logger: Logger
  registry: Registry
  index: ChunkIndex
  store: ChunkStore
  token: string | undefined
}

export class OriginServer {
  readonly http: HttpService
  readonly metrics: OriginMetrics
  readonly grantMetrics: OriginGrantMetrics
  readonly reader: ChunkReader
  readonly console: ShardConsole
  private readonly cfg: Config['origin']
  private readonly chunkSize: number
  private readonly repairs: RepairRecord
  /** bytes promised to uploads in flight, counted against free space */
  private reserved = 0
  private ready = false

  constructor(private readonly deps: OriginDeps) {
    this.cfg = deps.config.origin
    this.chunkSize = deps.config.cluster.chunkSize
    this.repairs = new RepairRecord(deps.store.dataDir)
    this.metrics = originMetrics(deps.registry, {
      cachedBytes: () => this.reader.cachedBytes, stats: () => deps.index.stats(), disk: () => this.disk() })
    this.reader = new ChunkReader(deps.store, this.metrics, this.cfg.readSize, this.cfg.memoryCacheBytes,
      (row, err) => this.markCorrupt(row, err, 'read'))
    type H = (req: IncomingMessage, res: ServerResponse, m: Match) => unknown
    // reads: the token when there is one, open otherwise (a shard sits on a private network, as the router's reads do
    // without a read token); writes and deletes: closed without a token, unless origin.insecureOpenWrites says otherwise
    const auth = (h: H): H => (req, res, m) => { requireBearerIfSet(req, deps.token); return h(req, res, m) }
    // a chunk's reads: the token, or a fill grant for this chunk on this shard (no token: open, as every read)
    this.grantMetrics = originGrantMetrics(deps.registry)
    const grantKey = deps.token === undefined ? undefined : fillGrantKey(deps.token)
    const chunkRead = (h: H): H => (req, res, m) => {
      const grant = grantKey === undefined ? undefined : grantFromHeader(req.headers.authorization)
      if (grant === undefined) return auth(h)(req, res, m)
      this.checkGrant(grantKey!, grant, m)
      return h(req, res, m)
    }
    const openWrites = deps.token === undefined && this.cfg.insecureOpenWrites
    const write = (h: H): H => openWrites ? h : (req, res, m) => {
      requireBearer(req, deps.token, WRITES_DISABLED)
      return h(req, res, m)
    }
    // the status console (docs/console.md): its figures need the shard token
    this.console = new ShardConsole({ registry: deps.registry, ready: () => this.ready, lastRepair: () => this.repairs.get(),
      id: () => this.cfg.id || `shard-${new URL(this.http.url).port}` })
    const site = this.console
    this.http = new HttpService({
      name: 'origin', http: deps.config.http, logRequests: deps.config.log.requests, logger: deps.logger,
      registry: deps.registry, ready: () => this.ready,
      routes: [
        { path: '/v1/chunks', methods: { GET: auth((q, s, m) => this.inventory(s, m)) } },
        { path: '/v1/chunks/:id/:index', methods: {
          GET: chunkRead((q, s, m) => this.getChunk(q, s, m)),
          PUT: write((q, s, m) => this.putChunk(q, s, m)),
          DELETE: write((q, s, m) => this.deleteChunk(q, s, m)) } },
        { path: '/v1/chunks/:id/:index/crcs', methods: { GET: chunkRead((q, s, m) => this.getCrcs(s, m)) } },
        { path: '/v1/manifests', methods: { GET: auth((q, s, m) => this.manifestList(s, m)) } },
        { path: '/v1/manifests/:id', methods: {
          GET: auth((q, s, m) => this.getManifest(q, s, m)),
          PUT: write((q, s, m) => this.putManifest(q, s, m)),
          DELETE: write((q, s, m) => this.deleteManifest(q, s, m)) } },
        { path: '/v1/status', methods: { GET: auth((q, s) => this.status(s)) } },
        { path: '/v1/repair-report', methods: {
          GET: auth((q, s) => sendJson(s, 200, { report: this.repairs.get() })),
          PUT: write(async (q, s) => sendJson(s, 200, { kept: await this.repairs.put(await readJson(q, MAX_REPAIR_REPORT_BYTES)) })) } },
        ...consoleRoutes({ logger: deps.logger, adminToken: deps.token, where: 'REELCDN_SHARD_TOKEN or origin.tokenFile', status: () => site.status() }),
      ],
    })
  }

  setReady(v: boolean): void {
    this.ready = v
  }

  /** Throws a 403 naming why unless `grant` is the router's, for this chunk, for this shard, unexpired. */
  private checkGrant(key: Buffer, grant: string, m: Match): void {
    try {
      verifyGrant(key, grant, { sid: m.params[0]!, index: Number(m.params[1]), shard: this.cfg.id, now: Date.now() / 1000 })
    } catch (err) {
      const reason = err instanceof GrantError ? err.reason : 'malformed'
      this.grantMetrics.checks.inc({ result: reason })
      this.deps.logger.info({ reason, chunk: `${m.params[0]}/${m.params[1]}` }, 'fill grant refused')
      throw err
    }
    this.grantMetrics.checks.inc({ result: 'ok' })
  }

  async disk(): Promise<{ capacity: number; free: number }> {
    const s = await statfs(this.deps.store.dataDir)
    return { capacity: s.blocks * s.bsize, free: s.bavail * s.bsize }
  }

  private row(m: Match): ChunkRow {
    const id = parseShardKey(m.params[0]!)
    const index = parseChunkIndex(m.params[1]!)
    const row = this.deps.index.get(id, index)
    if (!row) throw new NotFoundError(`chunk ${chunkName(id, index)}`)
    return row
  }

  private async getChunk(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const row = this.row(m)
    if (row.state !== 'ok') throw new CorruptChunkError(chunkName(row.contentId, row.index), 'awaiting repair')
    const plan = planResponse(req, {
      size: row.size, etag: `"${row.sha256}"`, lastModified: row.createdAt, contentType: 'application/octet-stream',
      cacheControl: 'public, max-age=31536000, immutable',
      // an edge's fill asks for the block list in the head: its first block is checked without waiting for a second answer
      extra: { 'repr-digest': digestHeader(row.sha256), ...(req.method === 'GET' && req.headers[WANT_BLOCK_LIST] === '1' ? blockListHead(row.crcs) : {}) },
    }, this.deps.config.http.maxRanges)
    await sendPlanned(res, plan, row.size, (s, e, r) => this.reader.writeRange(row, s, e, r))
    if (req.method === 'GET' && grantFromHeader(req.headers.authorization) !== undefined && this.deps.token !== undefined)
      this.grantMetrics.bytes.inc(plan.length)
  }

  /**
   * The chunk's block list: one CRC32C per `blockSize` block, 4 bytes each,
   * big-endian. A reader checks its SHA-256 against the manifest's `blocks`
   * entry, then verifies every block of a partial read against it.
   */
  private getCrcs(res: ServerResponse, m: Match): void {
    const row = this.row(m)
    if (row.state !== 'ok') throw new CorruptChunkError(chunkName(row.contentId, row.index), 'awaiting repair')
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': row.crcs.length,
      etag: `"${row.sha256}"`, 'x-block-size': String(row.blockSize) })
    res.end(row.crcs)
  }

  private async putChunk(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const id = parseShardKey(m.params[0]!)
    const index = parseChunkIndex(m.params[1]!)
    const name = chunkName(id, index)
    const want = parseContentDigest(req.headers['content-digest'])
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length'])
    if (declared !== undefined && declared > this.chunkSize) {
      this.metrics.puts.inc({ result: 'too_large' })
      throw new PayloadTooLargeError(`chunk ${name} of ${declared} bytes exceeds the chunk size of ${this.chunkSize}`)
    }
    const have = this.deps.index.get(id, index)
    if (have) {
      if (have.sha256 !== want) {
        this.metrics.puts.inc({ result: 'conflict' })
        throw new ConflictError(`chunk ${name} is stored with sha256 ${have.sha256}; a different body needs a DELETE first`)
      }
      if (have.state === 'ok') {
        // identical re-PUT: nothing to store, but the body is still checked against its digest, or a client
        // that sent other bytes under the stored digest would be told its upload landed
        const got = await hashBody(bodyOf(req), this.chunkSize)
        try {
          if (declared !== undefined && got.size !== declared)
            throw new BadRequestError(`chunk ${name}: body ended after ${got.size} of ${declared} bytes`, 'CDN_ERR_SHORT_BODY')
          if (got.sha256 !== want) throw new DigestMismatchError(`chunk ${name}`, want, got.sha256)
        } catch (err) {
          this.metrics.puts.inc({ result: 'rejected' })
          throw err
        }
        return this.exists(res, have)
      }
      // a corrupt copy with the right digest: the body replaces it (repair)
    }
    const need = declared ?? this.chunkSize
    const { free } = await this.disk()
    if (free - this.reserved - need < this.cfg.reserveBytes) {
      this.metrics.puts.inc({ result: 'no_space' })
      // the disk itself has room for this upload, taken for the moment by uploads in flight: the clients' timing,
      // to retry, not the operator's to act on (logged at info, not 50); else the disk is short of space
      const inFlight = free - need >= this.cfg.reserveBytes
      throw new InsufficientStorageError(`storing ${name} (${need} bytes) would leave less than the reserve of ${this.cfg.reserveBytes} bytes free (${free - this.reserved} free${inFlight ? `, ${this.reserved} held by uploads in flight: retry` : ''})`,
        undefined, inFlight ? 'client' : 'storage')
    }
    this.reserved += need
    let got
    try {
      got = await this.deps.store.receive(bodyOf(req), this.chunkSize, `chunk ${name}`)
    } finally {
      this.reserved -= need
    }
    try {
      if (declared !== undefined && got.size !== declared)
        throw new BadRequestError(`chunk ${name}: body ended after ${got.size} of ${declared} bytes`, 'CDN_ERR_SHORT_BODY')
      if (got.sha256 !== want) throw new DigestMismatchError(`chunk ${name}`, want, got.sha256)
      await this.deps.store.commit(got.tmpPath, id, index, got.sha256)
    } catch (err) {
      this.metrics.puts.inc({ result: 'rejected' })
      await this.deps.store.discard(got.tmpPath)
      throw err
    }
    const now = Date.now()
    const mine = { contentId: id, index, size: got.size, sha256: got.sha256, crcs: got.crcs,
      blockSize: BLOCK_SIZE, state: 'ok' as const, createdAt: have?.createdAt ?? now, verifiedAt: now }
    const row = this.deps.index.putIfAbsent(mine)
    if (row !== mine) {
      // a concurrent PUT of the same bytes stored it first (ours landed on the same file, byte for byte): this one
      // created nothing, as one that found it there beforehand, and a router may delete what its PUT created (201)
      if (row.sha256 === got.sha256) return this.exists(res, row)
      // one with other bytes won the race; ours was renamed to its own digest's name
      await this.deps.store.remove({ contentId: id, index, sha256: got.sha256 })
      this.metrics.puts.inc({ result: 'conflict' })
      throw new ConflictError(`chunk ${name} was stored concurrently with sha256 ${row.sha256}`)
    }
    if (have) this.reader.forget(have)
    this.metrics.puts.inc({ result: 'created' })
    this.metrics.bytesStored.inc(got.size)
    sendJson(res, 201, chunkJson(row), { etag: `"${row.sha256}"` })
  }

  /** A PUT of a chunk stored already with its bytes: 200, nothing created. */
  private exists(res: ServerResponse, row: ChunkRow): void {
    this.metrics.puts.inc({ result: 'exists' })
    sendJson(res, 200, chunkJson(row), { etag: `"${row.sha256}"` })
  }

  private async deleteChunk(_req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const row = this.row(m)
    // file first: a crash in between leaves a row without a file, which recovery drops;
    // the other order would leave a file that recovery re-adopts
    await this.deps.store.remove(row)
    this.deps.index.delete(row.contentId, row.index)
    this.reader.forget(row)
    res.writeHead(204).end()
  }

  markCorrupt(row: ChunkRow, err: Error, foundBy: 'read' | 'scrub'): void {
    this.metrics.corruptBlocks.inc({ found_by: foundBy })
    this.deps.index.setState(row.contentId, row.index, 'corrupt')
    this.reader.forget(row)
    this.deps.logger.error({ chunk: chunkName(row.contentId, row.index), foundBy, err: err.message }, 'corrupt chunk: marked, not served until repaired')
  }

  private inventory(res: ServerResponse, m: Match): void {
    const q = queryParams(m)
    const limit = parseLimit(q.get('limit'))
    let afterId = ''
    let afterIndex = -1
    const after = q.get('after')
    if (after) {
      const slash = after.lastIndexOf('/')
      if (slash < 0) throw new BadRequestError('after must be a cursor of the form contentId/index, as returned in next')
      afterId = parseShardKey(after.slice(0, slash))
      afterIndex = parseChunkIndex(after.slice(slash + 1))
    }
    const rows = this.deps.index.page(afterId, afterIndex, limit)
    const last = rows[rows.length - 1]
    sendJson(res, 200, {
      chunks: rows.map(chunkJson),
      next: rows.length === limit && last ? `${last.contentId}/${last.index}` : null,
    })
  }

  private getManifest(req: IncomingMessage, res: ServerResponse, m: Match): void {
    const id = parseContentId(m.params[0]!)
    const row = this.deps.index.getManifest(id)
    if (!row) throw new NotFoundError(`manifest ${id}`)
    if (req.headers['if-none-match'] === row.etag) return void res.writeHead(304, { etag: row.etag }).end()
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(row.body),
      etag: row.etag, 'last-modified': new Date(row.updatedAt).toUTCString() })
    res.end(req.method === 'HEAD' ? undefined : row.body)
  }

  private async putManifest(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const id = parseContentId(m.params[0]!)
    const manifest = parseManifest(await readJson(req, this.cfg.maxManifestBytes))
    if (manifest.contentId !== id) throw new BadRequestError(`manifest contentId ${manifest.contentId} does not match the URL's ${id}`)
    const body = JSON.stringify(manifest)
    const etag = `"${createHash('sha256').update(body).digest('hex')}"`
    const have = this.deps.index.getManifest(id)
    // If-None-Match: * creates only; If-Match replaces only what the writer last saw
    if (req.headers['if-none-match'] === '*' && have && have.etag !== etag) throw new PreconditionFailedError(`manifest ${id} exists`)
    const ifMatch = req.headers['if-match']
    if (ifMatch !== undefined && ifMatch !== '*' && (!have || have.etag !== ifMatch)) throw new PreconditionFailedError(`manifest ${id} has changed`)
    if (ifMatch === '*' && !have) throw new PreconditionFailedError(`manifest ${id} does not exist`)
    if (have?.etag === etag) return sendJson(res, 200, { contentId: id, etag }, { etag })
    this.deps.index.putManifest(id, body, etag, Date.now())
    sendJson(res, have ? 200 : 201, { contentId: id, etag }, { etag })
  }

  private deleteManifest(_req: IncomingMessage, res: ServerResponse, m: Match): void {
    const id = parseContentId(m.params[0]!)
    if (!this.deps.index.deleteManifest(id)) throw new NotFoundError(`manifest ${id}`)
    res.writeHead(204).end()
  }

  private manifestList(res: ServerResponse, m: Match): void {
    const q = queryParams(m)
    const limit = parseLimit(q.get('limit'))
    const after = q.get('after')
    const rows = this.deps.index.manifestPage(after ? parseContentId(after) : '', limit)
    sendJson(res, 200, { manifests: rows, next: rows.length === limit ? rows[rows.length - 1]!.contentId : null })
  }

  private async status(res: ServerResponse): Promise<void> {
    const s = this.deps.index.stats()
    const d = await this.disk()
    sendJson(res, 200, {
      chunkSize: this.chunkSize,
      chunks: { ok: s.ok, corrupt: s.corrupt },
      storedBytes: s.bytes,
      disk: { capacityBytes: d.capacity, freeBytes: d.free, reserveBytes: this.cfg.reserveBytes, reservedByUploads: this.reserved },
      memoryCacheBytes: this.reader.cachedBytes,
      // the last repair pass any process ran, so every router's /v1/cluster sees it (repair-record.ts)
      lastRepair: this.repairs.get(),
      // how long ago it arrived, by this shard's clock: a router places it on its own clock from this, never from the sender's
      lastRepairAgeMs: this.repairs.ageMs() ?? null,
    })
  }
}

function parseLimit(s: string | null): number {
  if (s === null) return 1000
  if (!/^[1-9][0-9]{0,4}$/.test(s) || Number(s) > 10000) throw new BadRequestError(`limit must be an integer from 1 to 10000, got ${JSON.stringify(s)}`)
  return Number(s)
}

function chunkJson(r: ChunkRow) {
  return { contentId: r.contentId, index: r.index, size: r.size, sha256: r.sha256, state: r.state,
    createdAt: r.createdAt, verifiedAt: r.verifiedAt }
}

/** The SHA-256 and size of a request body, read and dropped: what an identical re-PUT is checked by. */
async function hashBody(body: AsyncIterable<Buffer>, maxBytes: number): Promise<{ sha256: string; size: number }> {
  const sha = createHash('sha256')
  let size = 0
  for await (const piece of body) {
    size += piece.length
    if (size > maxBytes) throw new PayloadTooLargeError(`chunk body exceeds the chunk size of ${maxBytes} bytes`)
    sha.update(piece)
  }
  return { sha256: sha.digest('hex'), size }
}
