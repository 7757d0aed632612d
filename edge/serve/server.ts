import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Config } from '../../lib/config/config.js'
import type { Logger } from '../../lib/logger.js'
import { HttpService, peerAddress, queryParams, sendJson, type Match, type Route } from '../../lib/http/http.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { parseContentId } from '../../lib/ids.js'
import { NotFoundError } from '../../lib/errors.js'
import { hasBody, planResponse, sendPlanned, type ResponsePlan } from '../../lib/representation.js'
import { isAdaptive } from '../../lib/manifest.js'
import { requireAdmin } from '../../lib/security/auth.js'
import { requestToken } from '../../lib/security/tokens.js'
import { rangeStart } from '../../lib/http/range.js'
import { demandSession, type PlayAuth } from './play-auth.js'
import type { DemandRecorder } from '../prefill/demand.js'
import type { PrefillRunner } from '../prefill/prefill.js'
import type { ChunkCache } from '../tiers/cache.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { FirstRead, MetaCache } from '../fill/meta-cache.js'
import type { Result, Source, TitleReader } from './reader.js'
import { initOnly, renditionFile, type Title, type TitleFile } from '../title.js'
import { AdaptiveTitleError, NotAdaptiveError, parseFileRequest, pathToken } from './content-path.js'
import { playlistOf, type PlaylistRequest } from './playlists.js'
import { streamOf } from './session-id.js'
import { createHash } from 'node:crypto'
import { watchRoutes } from './watch.js'

/**
 * The edge's HTTP API.
 *   GET/HEAD /v1/content/{contentId}   players: RFC 9110 ranges, conditionals, CORS (a single-file title;
 *                                      an adaptive one is 404 CDN_ERR_ADAPTIVE naming its playlists)
 *   GET/HEAD /v1/content/{contentId}/{file}            an adaptive title's files (docs/abr.md): master.m3u8,
 *                                      manifest.mpd, {rid}.m3u8 (generated, edge/serve/playlists.ts), {rid}.mp4 (a
 *                                      rendition: the same reader, fills and tiers as a title's bytes), meta
 *   GET/HEAD /v1/content/{contentId}/t/{token}/{file}  the same with a play token in the path (content-path.ts)
 *   OPTIONS  each of the three         CORS preflight
 *   DELETE   /v1/cache/{contentId}     purge a title, its renditions included (admin token)
 *   GET      /v1/cache[?contentId=]    what the tiers hold; with contentId, that title's chunks by file (admin token)
 * Admin routes answer 401 when no admin token is configured: an edge faces the open internet.
 *   GET      /v1/prefill               the prefill plan (dry run) and progress (admin token)
 *   POST     /v1/prefill/start|stop    run a prefill pass now / stop it (admin token)
 *   POST     /admin/reload             re-read the config, apply what can change live (admin token; lib/reload.ts)
 *   GET/HEAD /watch/{contentId}, /assets/{name}   the watch page and its scripts (edge/serve/watch.ts)
 *   GET/HEAD /, /status, /status.json  the status console (edge/console/status.ts; the JSON needs the admin token)
 *
 * With `edge.requireToken`, a player GET/HEAD without a valid play token (in
 * the path, the query `token` or Authorization: Bearer) is answered 403 with
 * the reason; the preflight needs none (browsers send it without credentials).
 *
 * Multi-range requests get multipart/byteranges (lib/representation): ranges
 * closer than 80 bytes are merged, and more than `http.maxRanges` ranges are
 * answered 200 with the whole title, as RFC 9110 §14.2 allows. Players (MSE,
 * <video>, ffmpeg) send single ranges; multipart costs them nothing.
 */
export interface EdgeDeps {
  config: Readonly<Config>
  logger: Logger
  registry: Registry
  metrics: EdgeMetrics
  meta: MetaCache
  cache: ChunkCache
  fills: Coalescer
  reader: TitleReader
  adminToken: string | undefined
  /** --require-token: set, every player request needs a valid play token */
  auth?: PlayAuth | undefined
  /** the upstream (router) URL now: a reload may change it (edge.upstream); unset, the start-up config's */
  upstreamUrl?: () => string
  /** the token keys' verifier whenever the edge holds them (`auth` is it when tokens are required): demand counts only tokens it verifies */
  tokens?: PlayAuth | undefined
  demand?: DemandRecorder | undefined
  prefill?: PrefillRunner | undefined
  /** who is reading, for session-aware retention and the request log (edge/serve/session-id.ts); unset when nothing uses it */
  sessionOf?: (req: IncomingMessage, contentId: string) => string
  /** more routes: POST /admin/reload (lib/reload.ts), peer fill's (edge/site/peer-serve.ts), the status console's (edge/console/status.ts) */
  routes?: Route[] | undefined
  /** the serve threads (edge.serveThreads): a purge answers once they have dropped the title too */
  threads?: { sync(): Promise<void> } | undefined
}

const EXPOSE = 'Content-Range, Content-Length, Content-Type, ETag, Accept-Ranges, Last-Modified, Repr-Digest, X-Request-Id'
// Authorization: a player may carry its play token as a bearer (the path and query forms need no preflight for it)
const ALLOW_HEADERS = 'Range, If-Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since, Authorization'

export class EdgeServer {
  readonly http: HttpService
  private ready = false
  private readonly maxRanges: number
  private readonly corsOrigin: string

  constructor(private readonly deps: EdgeDeps) {
    this.maxRanges = deps.config.http.maxRanges
    this.corsOrigin = deps.config.edge.corsOrigin
    this.http = new HttpService({
      name: 'edge', http: deps.config.http, logRequests: deps.config.log.requests, logger: deps.logger,
      registry: deps.registry, ready: () => this.ready,
      routes: [
        { path: '/v1/content/:id', methods: {
          GET: (q, s, m) => this.content(q, s, m),
          OPTIONS: (q, s) => this.preflight(q, s) } },
        { path: '/v1/content/:id/:file', methods: {
          GET: (q, s, m) => this.named(q, s, m, m.params[1]!, undefined),
          OPTIONS: (q, s) => this.preflight(q, s) } },
        { path: '/v1/content/:id/t/:token/:file', methods: {
          GET: (q, s, m) => this.named(q, s, m, m.params[2]!, pathToken(m.params[1]!)),
          OPTIONS: (q, s) => this.preflight(q, s) } },
        { path: '/v1/cache', methods: { GET: (q, s, m) => this.status(q, s, m) } },
        { path: '/v1/cache/:id', methods: { DELETE: (q, s, m) => this.purge(q, s, m) } },
        { path: '/v1/prefill', methods: { GET: (q, s) => this.prefillStatus(q, s) } },
        { path: '/v1/prefill/start', methods: { POST: (q, s) => this.prefillStart(q, s) } },
        { path: '/v1/prefill/stop', methods: { POST: (q, s) => this.prefillStop(q, s) } },
        ...watchRoutes(() => deps.config.edge.playApiUrl || (deps.upstreamUrl?.() ?? deps.config.edge.upstream), deps.config.http.maxRanges),
        ...(deps.routes ?? []),
      ],
    })
  }

  setReady(v: boolean): void {
    this.ready = v
  }

  private preflight(_req: IncomingMessage, res: ServerResponse): void {
    cors(res, this.corsOrigin)
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, HEAD, OPTIONS',
      'access-control-allow-headers': ALLOW_HEADERS,
      'access-control-max-age': '86400',
      allow: 'GET, HEAD, OPTIONS',
    })
    res.end()
  }

  /** GET /v1/content/{id}: a single-file title's bytes. */
  private async content(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    const t0 = performance.now()
    cors(res, this.corsOrigin)
    const id = parseContentId(m.params[0]!)
    const token = this.authorize(req, id, m.query, undefined)
    const title = this.deps.meta.peek(id) ?? await this.deps.meta.fetch(id, firstRead(req, undefined))
    if (isAdaptive(title.manifest)) throw new AdaptiveTitleError(id)
    return this.sendFile(req, res, title.file, token, t0)
  }

  /** GET /v1/content/{id}[/t/{token}]/{name}: a file of the title. */
  private async named(req: IncomingMessage, res: ServerResponse, m: Match, name: string, token: string | undefined): Promise<void> {
    const t0 = performance.now()
    cors(res, this.corsOrigin)
    const id = parseContentId(m.params[0]!)
    const want = parseFileRequest(id, name)
    token = this.authorize(req, id, m.query, token)
    const title = this.deps.meta.peek(id) ?? await this.deps.meta.fetch(id, want.kind === 'rendition' ? firstRead(req, want.rid) : undefined)
    if (want.kind === 'meta') return this.sendMeta(req, res, title)
    if (want.kind !== 'rendition') return this.sendPlaylist(req, res, title, want)
    if (!isAdaptive(title.manifest)) throw new NotAdaptiveError(id, name)
    const file = renditionFile(title, want.rid)
    if (file === undefined) throw new NotFoundError(`rendition ${want.rid} of ${id} (it has ${title.manifest.renditions.map(r => r.id).join(', ')})`)
    return this.sendFile(req, res, file, token, t0)
  }

  /** The request's play token (the path's, else the query's or the bearer), checked when tokens are required. */
  private authorize(req: IncomingMessage, id: string, query: string, inPath: string | undefined): string | undefined {
    const { auth, demand } = this.deps
    const token = inPath ?? (auth !== undefined || demand !== undefined ? requestToken(query, req.headers.authorization) : undefined)
    if (auth !== undefined) auth.check(token, id, peerAddress(req) ?? '', Date.now())
    return token
  }

  private sendPlaylist(req: IncomingMessage, res: ServerResponse, title: Title, want: PlaylistRequest): Promise<void> {
    const p = playlistOf(title, want, this.deps.config.edge.metaTtlMs / 1000)
    const plan = planResponse(req, p.rep, this.maxRanges)
    const { hot } = this.deps.metrics
    hot.responses[responseKind(req, plan)].n++
    hot.playlists[want.kind].n++
    return sendPlanned(res, plan, p.body.length, async (s, e, r) => void r.write(p.body.subarray(s, e + 1)))
  }

  /** The manifest (renditions included), as the router's /meta answers it. */
  private sendMeta(req: IncomingMessage, res: ServerResponse, title: Title): void {
    const text = JSON.stringify(title.manifest)
    const etag = `"${createHash('sha256').update(text).digest('hex')}"`
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end()
    sendJson(res, 200, title.manifest, { etag })
  }

  /**
   * A file's bytes: a single-file title's, or a rendition's. One path for
   * both: the same reader, coalescer, fills and tiers (edge/title.ts).
   */
  private async sendFile(req: IncomingMessage, res: ServerResponse, file: TitleFile, token: string | undefined, t0: number): Promise<void> {
    const { reader, metrics, demand } = this.deps
    const id = file.contentId
    const size = file.size
    const plan = planResponse(req, file.rep, this.maxRanges)
    metrics.hot.responses[responseKind(req, plan)].n++
    const body = hasBody(req, plan)
    if (demand !== undefined && body) {
      // a verified token's session, else the client address's (play-auth.ts): checked only for what is counted
      demand.request(demandSession(token, this.deps.auth !== undefined, this.deps.tokens, id, peerAddress(req) ?? '', Date.now()), id, file.rid)
      demand.chunks(id, firstChunk(plan, file), lastChunk(plan, file), file.chunks.length, file.rid, file.kind)
    }
    if (!body) return sendPlanned(res, plan, size, noBytes)
    // the first chunk is opened before the headers: its failure is still a clean 502/504
    const start = plan.ranges === null ? 0 : plan.ranges[0]!.start
    const last = plan.ranges === null ? size - 1 : plan.ranges[plan.ranges.length - 1]!.end
    // a rendition's init segment alone (read on every rung switch) is not where the viewer is
    const moves = !initOnly(file, last)
    const cs = file.chunkSize
    const index = Math.floor(start / cs)
    const src = reader.openRam(file, index, moves) ?? await reader.open(file, index, start % cs, true, moves, false, res)
    metrics.ttfb.observe(TTFB_LABELS[src.result], (performance.now() - t0) / 1000)
    const s = this.deps.sessionOf?.(req, id)
    const session = s === undefined ? undefined : streamOf(s, file)
    if (src.fill === undefined && plan.multipart === null) {
      const end = plan.ranges === null ? size - 1 : plan.ranges[0]!.end
      if (Math.floor(end / cs) === index) {
        // a hit inside one chunk. The headers are set, not sent: they go out with the first byte (from RAM: in the
        // same write, as nothing can fail any more; from disk: once its first piece has verified), and the last piece ends the response
        res.statusCode = plan.status
        for (const k in plan.headers) res.setHeader(k, plan.headers[k]!)
        if (src.buf !== undefined) return reader.sendRam(file, src, start - index * cs, end - index * cs, res, session, moves)
        return reader.sendDisk(file, src, start - index * cs, end - index * cs, res, session, moves)
      }
    }
    const first = { src: src as Source | undefined }
    try {
      await sendPlanned(res, plan, size, (s, e, r) => reader.writeRange(file, s, e, r, first, session, moves))
    } finally {
      reader.release(first.src)
    }
  }

  private async purge(req: IncomingMessage, res: ServerResponse, m: Match): Promise<void> {
    requireAdmin(req, this.deps.adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')
    const id = parseContentId(m.params[0]!)
    this.deps.meta.invalidate(id)
    this.deps.fills.purge(id)
    const purged = await this.deps.cache.purge(id)
    await this.deps.threads?.sync()
    this.deps.metrics.purges.inc()
    this.deps.logger.info({ contentId: id, purged }, 'title purged from the cache')
    sendJson(res, 200, { contentId: id, purged })
  }

  private runner(): PrefillRunner {
    if (!this.deps.prefill) throw new NotFoundError('prefill (this edge runs without it)')
    return this.deps.prefill
  }

  private async prefillStatus(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireAdmin(req, this.deps.adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')
    const p = this.runner()
    const plan = await p.plan()
    sendJson(res, 200, {
      state: p.state, running: p.running, bytesThisWindow: p.bytesThisWindow, settings: p.settings,
      plan: { dryRun: true, chunks: plan.chunks.slice(0, 1000), count: plan.chunks.length, bytes: plan.bytes, budgetLeft: plan.budgetLeft },
      progress: p.progress,
    })
  }

  private prefillStart(req: IncomingMessage, res: ServerResponse): void {
    requireAdmin(req, this.deps.adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')
    const { started } = this.runner().start()
    sendJson(res, started ? 202 : 200, { started, state: this.runner().state })
  }

  private async prefillStop(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireAdmin(req, this.deps.adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')
    await this.runner().stop()
    sendJson(res, 200, { state: this.runner().state, progress: this.runner().progress })
  }

  /** The tiers' figures; with `?contentId=`, also which chunks of each of that title's files each tier holds. */
  private status(req: IncomingMessage, res: ServerResponse, m: Match): void {
    requireAdmin(req, this.deps.adminToken, 'REELCDN_EDGE_ADMIN_TOKEN or edge.adminTokenFile')
    const { cache, fills } = this.deps
    const q = queryParams(m).get('contentId')
    const title = q === null ? {} : { title: { contentId: parseContentId(q), files: cache.chunksOf(q) } }
    sendJson(res, 200, { ram: cache.ram.stats(), disk: cache.disk.stats(), fillsInFlight: fills.size, ...title })
  }
}

export async function noBytes(): Promise<void> {}

/** The CORS headers of every player answer (errors included: a browser player must be able to read them). */
export function cors(res: ServerResponse, origin: string): void {
  res.setHeader('access-control-allow-origin', origin)
  res.setHeader('access-control-expose-headers', EXPOSE)
  if (origin !== '*') res.setHeader('vary', 'Origin')
}

/** label objects built once: the hit path allocates none */
export const TTFB_LABELS: Record<Result, { result: Result }> = {
  ram_hit: { result: 'ram_hit' }, disk_hit: { result: 'disk_hit' }, miss: { result: 'miss' }, coalesced: { result: 'coalesced' },
}

/** The chunks of a file a planned answer's body starts and ends in (what a player's demand is counted by). */
export function firstChunk(plan: ResponsePlan, m: Pick<TitleFile, 'chunkSize'>): number {
  return plan.ranges === null ? 0 : Math.floor(plan.ranges[0]!.start / m.chunkSize)
}
export function lastChunk(plan: ResponsePlan, m: Pick<TitleFile, 'chunkSize' | 'size'>): number {
  const r = plan.ranges
  return Math.floor((r === null ? m.size - 1 : r[r.length - 1]!.end) / m.chunkSize)
}

export function responseKind(req: IncomingMessage, plan: ResponsePlan): 'not_modified' | 'head' | 'full' | 'multirange' | 'range' {
  if (plan.status === 304) return 'not_modified'
  if (req.method === 'HEAD') return 'head'
  if (plan.status === 200) return 'full'
  return plan.multipart ? 'multirange' : 'range'
}

/** Where a read of a file's bytes starts, as far as the request says before the manifest is in (meta-cache.ts `fetching`). */
function firstRead(req: IncomingMessage, rid: string | undefined): FirstRead | undefined {
  if (req.method === 'HEAD') return undefined
  const offset = rangeStart(req.headers.range)
  return offset === undefined ? undefined : { rid, offset }
}
