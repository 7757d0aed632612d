import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { HttpService, lingerOnClose, queryParams, sendJson, type Match, type Route } from '../lib/http.js'
import type { RouterMetrics } from '../lib/metrics.js'
import { bearerMatchesAny, requireAdmin, requireAnyBearer } from '../lib/auth.js'
import { NotFoundError } from '../lib/errors.js'
import { digestHeader } from '../lib/digest.js'
import { BLOCK_SIZE } from '../lib/block-hasher.js'
import { parseChunkIndex, parseContentId } from '../lib/ids.js'
import { chunkLength, type Manifest } from '../lib/manifest.js'
import { planResponse, sendPlanned } from '../lib/representation.js'
import { etagOf, sha256Hex } from './cluster/keys.js'
import { parseMeta } from './ingest/meta.js'
import { parseCatalogQuery, type Catalog } from './playback/catalog.js'
import type { Cluster } from './cluster/cluster.js'
import type { Manifests } from './cluster/manifests.js'
import type { Ingestor } from './ingest/ingest.js'
import type { ChunkReader, Prepared } from './read/reader.js'
import type { Repairer } from './repair/repair.js'
import { clusterView } from './cluster/cluster-view.js'
import { removeTitle } from './cluster/remove.js'
import { contentAuth } from './read/content-auth.js'
import type { KeyRing } from '../lib/tokens.js'

/**
 * The router's HTTP API. Public: reads, the catalog, /v1/cluster (reads and the
 * catalog need the read token when `router.readTokenFile` or REELCDN_ROUTER_READ_TOKEN
 * sets one; with `router.requireToken` a title's reads need a play token for it
 * or that credential: router/read/content-auth.ts). A chunk's block list
 * (`/chunks/{i}/crcs`, what edges verify their fills with) is read like the chunk. Admin (bearer token): ingest, delete, repair. Every read speaks the same RFC 9110
 * contract as the origin and the edge (lib/representation.ts): the title's
 * ETag is its whole-file SHA-256, a chunk's is the chunk's.
 */
export interface RouterDeps {
  config: Readonly<Config>
  logger: Logger
  registry: Registry
  cluster: Cluster
  manifests: Manifests
  catalog: Catalog
  reader: ChunkReader
  ingestor: Ingestor
  repairer: Repairer
  adminToken: string | undefined
  /** when set, content reads (what edges fill from) need it or the admin token; undefined: reads are public */
  readToken?: string | undefined
  metrics: RouterMetrics
  /** more routes (router/playback/playback-api.ts) */
  routes?: Route[]
  /** the edge registry's listing, for GET /v1/edges */
  edges?: () => unknown[]
  /** token keys: a `?token=` on a title read is verified with them (router/read/content-auth.ts) */
  ring?: KeyRing | undefined
  /** router.requireToken: title reads need a play token or the edges' credential */
  requireToken?: boolean
}

type H = (req: IncomingMessage, res: ServerResponse, m: Match) => unknown

export class RouterServer {
  readonly http: HttpService
  private ready = false

  constructor(private readonly d: RouterDeps) {
    const admin = (h: H): H => (req, res, m) => {
      // no token configured: the admin API is closed, not open
      requireAdmin(req, d.adminToken, 'REELCDN_ROUTER_TOKEN or router.tokenFile')
      return h(req, res, m)
    }
    // the catalog: open by default (a router on loopback behind edges), or the edges' fill credential
    const read = (h: H): H => d.readToken === undefined ? h : (req, res, m) => {
      requireAnyBearer(req, [d.readToken, d.adminToken])
      return h(req, res, m)
    }
    // a title's bytes and manifest: the same, or a play token for that title (router/read/content-auth.ts)
    const check = contentAuth({ readToken: d.readToken, adminToken: d.adminToken, ring: d.ring, requireToken: d.requireToken ?? false })
    const title = (h: H): H => check === undefined ? h : (req, res, m) => {
      check(req, m.query, parseContentId(m.params[0]!))
      return h(req, res, m)
    }
    this.http = new HttpService({
      name: 'router', http: d.config.http, logRequests: d.config.log.requests, logger: d.logger, registry: d.registry,
      ready: () => this.ready,
      routes: [
        { path: '/v1/content', methods: { GET: read((q, s, m) => this.catalog(s, m)) } },
        { path: '/v1/content/:id', methods: {
          GET: title((q, s, m) => this.getTitle(q, s, m)),
          PUT: admin((q, s, m) => this.putTitle(q, s, m)),
          DELETE: admin((q, s, m) => this.deleteTitle(s, m)) } },
        { path: '/v1/content/:id/meta', methods: { GET: title((q, s, m) => this.meta(q, s, m)) } },
        { path: '/v1/content/:id/chunks/:index', methods: { GET: title((q, s, m) => this.getChunk(q, s, m)) } },
        { path: '/v1/content/:id/chunks/:index/crcs', methods: { GET: title((q, s, m) => this.getCrcs(s, m)) } },
        { path: '/v1/cluster', methods: { GET: (q, s) => sendJson(s, 200, clusterView(d.cluster, d.repairer, d.config, { admin: bearerMatchesAny(q, [d.adminToken]) })) } },
        { path: '/v1/cluster/repair', methods: { POST: admin((q, s, m) => this.repair(s, m)) } },
        // a cheap check of the admin token, before work that needs it (`reelcdn ingest` asks it before hashing a file)
        { path: '/v1/admin', methods: { GET: admin((q, s) => sendJson(s, 200, { admin: true })) } },
        { path: '/v1/edges', methods: { GET: admin((q, s) => sendJson(s, 200, { edges: this.d.edges?.() ?? [] })) } },
        ...(d.routes ?? []),
      ],
    })
  }

  setReady(v: boolean): void {
    this.ready = v
  }

  private async getTitle(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const man = await this.d.manifests.get(parseContentId(m.params[0]!))
    const plan = planResponse(req, {
      size: man.size, etag: etagOf(man.sha256), lastModified: man.createdAt, contentType: man.contentType,
      extra: { 'repr-digest': digestHeader(man.sha256), 'reelcdn-version': man.version },
    }, this.d.config.http.maxRanges)
    const r = plan.ranges?.[0] ?? { start: 0, end: man.size - 1 }
    const first = await this.prepare(req, plan.status, plan.length, man, r.start, r.end)
    try {
      await sendPlanned(res, plan, man.size, (s, e, out) => this.d.reader.writeRange(man, s, e, out, first))
    } finally {
      first?.body.destroy()
    }
  }

  /** Opens the first chunk's stream before the status goes out; none for HEAD, 304 or empty bodies. */
  private async prepare(req: IncomingMessage, status: number, length: number, man: Manifest, start: number, end: number): Promise<Prepared | undefined> {
    if (req.method !== 'GET' || status === 304 || length === 0) return undefined
    const i = Math.floor(start / man.chunkSize)
    const base = i * man.chunkSize
    return this.d.reader.prepare(man, i, start - base, Math.min(end, base + chunkLength(man, i) - 1) - base)
  }

  private async getChunk(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const man = await this.d.manifests.get(parseContentId(m.params[0]!))
    const index = parseChunkIndex(m.params[1]!)
    if (index >= man.chunks.length) throw new NotFoundError(`chunk ${index} of ${man.contentId} (it has ${man.chunks.length})`)
    const size = chunkLength(man, index)
    const sha = man.chunks[index]!
    const plan = planResponse(req, {
      size, etag: etagOf(sha), lastModified: man.createdAt, contentType: 'application/octet-stream',
      extra: { 'repr-digest': digestHeader(sha), 'reelcdn-version': man.version },
    }, this.d.config.http.maxRanges)
    const r = plan.ranges?.[0] ?? { start: 0, end: size - 1 }
    const first = req.method === 'GET' && plan.status !== 304 && plan.length > 0
      ? await this.d.reader.prepare(man, index, r.start, r.end) : undefined
    try {
      await sendPlanned(res, plan, size, (s, e, out) =>
        this.d.reader.writeChunk(man, index, s, e, out, first && first.start === s && first.end === e ? first : undefined))
    } finally {
      first?.body.destroy()
    }
  }

  /**
   * A chunk's block list (a CRC32C per 64 KiB block, packed big-endian), checked
   * against the manifest's `blocks` digest: what an edge verifies its fill with,
   * block by block. 404 for a title ingested before manifests carried block lists.
   */
  private async getCrcs(res: ServerResponse, m: Match): Promise<void> {
    const man = await this.d.manifests.get(parseContentId(m.params[0]!))
    const index = parseChunkIndex(m.params[1]!)
    if (index >= man.chunks.length) throw new NotFoundError(`chunk ${index} of ${man.contentId} (it has ${man.chunks.length})`)
    const crcs = await this.d.reader.verifiedBlockList(man, index)
    if (crcs === undefined) throw new NotFoundError(`the block list of chunk ${index} of ${man.contentId} (ingested before manifests carried block lists)`)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': crcs.length,
      etag: etagOf(man.chunks[index]!), 'x-block-size': String(BLOCK_SIZE), 'reelcdn-version': man.version })
    res.end(crcs)
  }

  private meta(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    return this.d.manifests.get(parseContentId(m.params[0]!)).then(man => {
      const etag = `"${sha256Hex(JSON.stringify(man))}"`
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end()
      sendJson(res, 200, man, { etag })
    })
  }

  private async catalog(res: ServerResponse, m: Match): Promise<void> {
    sendJson(res, 200, await this.d.catalog.query(parseCatalogQuery(queryParams(m))))
  }

  private async putTitle(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const id = parseContentId(m.params[0]!)
    const meta = parseMeta(req.headers, id)
    const result = await this.d.ingestor.ingest(req, id, meta)
    // 'exists' is known from the digest alone, before the body: see lingerOnClose
    if (!req.complete) {
      res.setHeader('connection', 'close')
      lingerOnClose(req)
    }
    sendJson(res, result.status === 'created' ? 201 : 200, result, { etag: etagOf(result.sha256) })
    if (!req.complete) req.resume()
  }

  private async deleteTitle(res: ServerResponse, m: Match): Promise<void> {
    const id = parseContentId(m.params[0]!)
    const out = await removeTitle(this.d.cluster, this.d.manifests, this.d.logger, id)
    this.d.catalog.remove(id)
    sendJson(res, 200, out)
  }

  private async repair(res: ServerResponse, m: Match): Promise<void> {
    const dryRun = queryParams(m).get('dryRun') === 'true'
    sendJson(res, 200, await this.d.repairer.run({ dryRun }))
  }
}
