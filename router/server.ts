import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Config } from '../lib/config/config.js'
import type { Logger } from '../lib/logger.js'
import { HttpService, lingerOnClose, queryParams, sendJson, type Match, type Route } from '../lib/http/http.js'
import type { RouterMetrics } from '../lib/metrics.js'
import { bearerMatchesAny, requireAdmin, requireAnyBearer } from '../lib/security/auth.js'
import { AdaptiveTitleError } from '../lib/errors.js'
import { cors, preflight } from '../lib/http/cors.js'
import { parseChunkIndex, parseContentId } from '../lib/ids.js'
import { isAdaptive, type Manifest } from '../lib/manifest.js'
import { etagOf, sha256Hex } from './cluster/keys.js'
import { titleFile } from './cluster/files.js'
import { parseMeta } from './ingest/meta.js'
import { isAdaptivePublish } from './ingest/ladder.js'
import { parseCatalogQuery, type Catalog } from './playback/catalog.js'
import type { Cluster } from './cluster/cluster.js'
import type { Manifests } from './cluster/manifests.js'
import type { Ingestor } from './ingest/ingest.js'
import type { Publisher } from './ingest/publish.js'
import type { ChunkReader } from './read/reader.js'
import type { Repairer } from './repair/repair.js'
import { clusterView } from './cluster/cluster-view.js'
import { removeTitle } from './cluster/remove.js'
import { contentAuth } from './read/content-auth.js'
import { FileServer } from './read/file-server.js'
import { AdaptiveReads } from './read/adaptive-reads.js'
import type { FillGrants } from './read/fill-grants.js'
import { watchRoutes } from './playback/watch.js'
import type { KeyRing } from '../lib/security/tokens.js'
import type { TitleDeletes } from './ingest/deletes.js'

/**
 * The router's HTTP API. Public: reads, the catalog, /v1/cluster (reads and the
 * catalog need the read token when `router.readTokenFile` or REELCDN_ROUTER_READ_TOKEN
 * sets one; with `router.requireToken` a title's reads need a play token for it
 * or that credential: router/read/content-auth.ts). A chunk's block list
 * (`/chunks/{i}/crcs`, what edges verify their fills with) is read like the
 * chunk. Admin (bearer token): ingest, rendition uploads, publish, delete,
 * repair. Every read speaks the same RFC 9110 contract as the origin and the
 * edge (lib/representation.ts): a file's ETag is its whole-file SHA-256, a
 * chunk's is the chunk's, a playlist's the ladder's version.
 *
 * An adaptive title's files (docs/abr.md, "URLs") sit under its URL:
 * `master.m3u8`, `{rid}.m3u8`, `manifest.mpd`, `{rid}.mp4`
 * (router/read/adaptive-reads.ts), each also under `t/{token}/` with the play
 * token in the path, and its renditions' chunks under `r/{rid}/chunks/{i}`.
 * Routes match by segment count, then literal segments, first match wins:
 * `meta` is listed before `:file`, and `chunks`, `renditions`, `r` and `t`
 * are literals where a file name or a rendition id would be a parameter, so
 * no file name or rendition id can shadow them. Player reads carry CORS
 * (router.corsOrigin) and answer preflights without a credential.
 *
 * The watch page, `GET /watch/{id}`, and its scripts, `GET /assets/{name}`,
 * are lib/watch's (router/playback/watch.ts); the page asks this router's
 * /v1/play, which answers pages of other origins too (playback-api.ts).
 */
export interface RouterDeps {
  config: Readonly<Config>
  logger: Logger
  /** the DELETEs of titles running here: uploads of the same titles meanwhile are a 409 (router/ingest/deletes.ts) */
  deletes: TitleDeletes
  registry: Registry
  cluster: Cluster
  manifests: Manifests
  catalog: Catalog
  reader: ChunkReader
  ingestor: Ingestor
  publisher: Publisher
  repairer: Repairer
  adminToken: string | undefined
  /** when set, content reads (what edges fill from) need it or the admin token; undefined: reads are public */
  readToken?: string | undefined
  metrics: RouterMetrics
  /** more routes (router/playback/playback-api.ts) */
  routes?: Route[]
  /** the edge registry's listing, for GET /v1/edges */
  edges?: () => unknown[]
  /** token keys: a play token in a title read's URL is verified with them (router/read/content-auth.ts) */
  ring?: KeyRing | undefined
  /** router.requireToken: title reads need a play token or the edges' credential */
  requireToken?: boolean
  /** where edges read chunks straight from the shards, with grants (router/read/fill-grants.ts) */
  fillGrants?: FillGrants
}

type H = (req: IncomingMessage, res: ServerResponse, m: Match) => unknown

export class RouterServer {
  readonly http: HttpService
  private ready = false
  private readonly files: FileServer
  private readonly adaptive: AdaptiveReads

  constructor(private readonly d: RouterDeps) {
    const rc = d.config.router
    this.files = new FileServer(d.reader, d.config.http.maxRanges)
    this.adaptive = new AdaptiveReads(d.manifests, this.files,
      { maxRanges: d.config.http.maxRanges, playlistMaxAgeS: Math.floor(rc.manifestTtlMs / 1000) })
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
    // a player read: CORS first, so that a refusal is readable by a script player too
    const player = (h: H, pathToken = false): H => (req, res, m) => {
      cors(res, rc.corsOrigin)
      check?.(req, m.query, parseContentId(m.params[0]!), pathToken ? m.params[1] : undefined)
      return h(req, res, m)
    }
    const options: H = (q, s) => preflight(s, rc.corsOrigin)
    const id = (m: Match) => parseContentId(m.params[0]!)
    this.http = new HttpService({
      name: 'router', http: d.config.http, logRequests: d.config.log.requests, logger: d.logger, registry: d.registry,
      ready: () => this.ready,
      routes: [
        { path: '/v1/content', methods: { GET: read((q, s, m) => this.catalog(s, m)) } },
        { path: '/v1/content/:id', methods: {
          GET: player((q, s, m) => this.getTitle(q, s, m)),
          PUT: admin((q, s, m) => this.putTitle(q, s, m)),
          DELETE: admin((q, s, m) => this.deleteTitle(s, m)),
          OPTIONS: (q, s) => preflight(s, rc.corsOrigin, { allow: 'GET, HEAD, PUT, DELETE, OPTIONS' }) } },
        { path: '/v1/content/:id/meta', methods: { GET: title((q, s, m) => this.meta(q, s, m)) } },
        { path: '/v1/content/:id/chunks/:index', methods: { GET: title((q, s, m) => this.getChunk(q, s, m)) } },
        { path: '/v1/content/:id/chunks/:index/crcs', methods: {
          GET: title(async (q, s, m) => this.files.crcs(s, titleFile(await this.single(id(m))), parseChunkIndex(m.params[1]!))) } },
        ...(d.fillGrants ? [
          { path: '/v1/content/:id/fill/:index', methods: {
            GET: title((q, s, m) => d.fillGrants!.answer(q, s, id(m), undefined, parseChunkIndex(m.params[1]!), m.query)) } },
          { path: '/v1/content/:id/r/:rid/fill/:index', methods: {
            GET: title((q, s, m) => d.fillGrants!.answer(q, s, id(m), m.params[1]!, parseChunkIndex(m.params[2]!), m.query)) } },
        ] : []),
        { path: '/v1/content/:id/renditions/:rid', methods: { PUT: admin((q, s, m) => this.putRendition(q, s, m)) } },
        { path: '/v1/content/:id/r/:rid/chunks/:index', methods: {
          GET: title((q, s, m) => this.adaptive.chunk(q, s, id(m), m.params[1]!, parseChunkIndex(m.params[2]!))) } },
        { path: '/v1/content/:id/r/:rid/chunks/:index/crcs', methods: {
          GET: title((q, s, m) => this.adaptive.crcs(s, id(m), m.params[1]!, parseChunkIndex(m.params[2]!))) } },
        { path: '/v1/content/:id/t/:token/:file', methods: {
          GET: player((q, s, m) => this.adaptive.file(q, s, id(m), m.params[2]!), true), OPTIONS: options } },
        { path: '/v1/content/:id/:file', methods: {
          GET: player((q, s, m) => this.adaptive.file(q, s, id(m), m.params[1]!)), OPTIONS: options } },
        { path: '/v1/cluster', methods: { GET: (q, s) => sendJson(s, 200, clusterView(d.cluster, d.repairer, d.config, { admin: bearerMatchesAny(q, [d.adminToken]) })) } },
        { path: '/v1/cluster/repair', methods: { POST: admin((q, s, m) => this.repair(s, m)) } },
        // a cheap check of the admin token, before work that needs it (`reelcdn ingest` asks it before hashing a file)
        { path: '/v1/admin', methods: { GET: admin((q, s) => sendJson(s, 200, { admin: true })) } },
        { path: '/v1/edges', methods: { GET: admin((q, s) => sendJson(s, 200, { edges: this.d.edges?.() ?? [] })) } },
        ...(d.routes ?? []),
        ...watchRoutes({ manifests: d.manifests, maxRanges: d.config.http.maxRanges }),
      ],
    })
  }

  setReady(v: boolean): void {
    this.ready = v
  }

  /** A single-file title's manifest; an adaptive title has no bytes of its own (404 naming its playlists). */
  private async single(contentId: string): Promise<Manifest> {
    const man = await this.d.manifests.get(contentId)
    if (isAdaptive(man)) throw new AdaptiveTitleError(contentId)
    return man
  }

  private async getTitle(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const man = await this.single(parseContentId(m.params[0]!))
    await this.files.file(req, res, titleFile(man), { contentType: man.contentType, lastModified: man.createdAt })
  }

  private async getChunk(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const man = await this.single(parseContentId(m.params[0]!))
    await this.files.chunk(req, res, titleFile(man), parseChunkIndex(m.params[1]!), man.createdAt)
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
    if (isAdaptivePublish(req.headers['content-type'])) {
      const result = await this.d.publisher.publish(req, id, meta)
      return sendJson(res, result.status === 'created' ? 201 : 200, result, { etag: `"${result.version}"` })
    }
    const result = await this.d.ingestor.ingest(req, id, meta)
    answerUpload(req, res, result.status === 'created' ? 201 : 200, result, etagOf(result.sha256))
  }

  private async putRendition(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const result = await this.d.ingestor.ingestRendition(req, parseContentId(m.params[0]!), m.params[1]!)
    answerUpload(req, res, 200, result, etagOf(result.sha256))
  }

  private async deleteTitle(res: ServerResponse, m: Match): Promise<void> {
    const id = parseContentId(m.params[0]!)
    // uploads of the title meanwhile are refused (router/ingest/deletes.ts)
    this.d.deletes.begin(id)
    let out
    try {
      out = await removeTitle(this.d.cluster, this.d.manifests, this.d.logger, id)
    } finally {
      this.d.deletes.end(id)
    }
    this.d.catalog.remove(id)
    sendJson(res, 200, out)
  }

  private async repair(res: ServerResponse, m: Match): Promise<void> {
    const dryRun = queryParams(m).get('dryRun') === 'true'
    sendJson(res, 200, await this.d.repairer.run({ dryRun }))
  }
}

/**
 * Answers an upload. 'exists' is known from the digest alone, before the
 * body: the connection then closes once the answer is out, reading and
 * dropping the rest meanwhile (lingerOnClose).
 */
function answerUpload(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, etag: string): void {
  if (!req.complete) {
    res.setHeader('connection', 'close')
    lingerOnClose(req)
  }
  sendJson(res, status, body, { etag })
  if (!req.complete) req.resume()
}

