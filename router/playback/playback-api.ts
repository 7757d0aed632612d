import type { IncomingMessage, ServerResponse } from 'node:http'
import { requireBearer } from '../../lib/security/auth.js'
import { cors, preflight } from '../../lib/http/cors.js'
import { BadRequestError, NotConfiguredError } from '../../lib/errors.js'
import { queryParams, readJson, sendJson, type Match, type Route } from '../../lib/http/http.js'
import type { Logger } from '../../lib/logger.js'
import { requestToken, signViewer, verifyToken, verifyViewer, type KeyRing } from '../../lib/security/tokens.js'
import type { Catalog } from './catalog.js'
import { HeartbeatRefusedError, parseHeartbeat, type EdgeRegistry } from './edge-registry.js'
import { HOT_LIMIT, type HotTitles } from './hot-titles.js'
import type { Steering } from './steering.js'
import type { RouterSteeringMetrics } from '../../lib/metrics.js'
import { parseContentId } from '../../lib/ids.js'
import type { Manifests } from '../cluster/manifests.js'
import { play, type RegionMap } from './play.js'
import type { Sessions } from './sessions.js'
import type { SessionPeers } from './session-peers.js'
import { parseDemandReport, sliceOf, SLICES, type Trending } from './trending.js'
import { titleDuration } from './catalog.js'
import { isAdaptive, type Manifest } from '../../lib/manifest.js'
import type { WindowName } from './window-counter.js'
import { randomBytes } from 'node:crypto'

/**
 * The router's playback API (issue 5):
 *   POST /v1/edges/heartbeat          an edge registers / reports health (edge credential); answers its site's members and hot titles
 *   GET  /v1/edges                    the registry (admin)
 *   GET  /v1/edges/state              heartbeats this router received, with their age, for peer routers (edge credential)
 *   POST /v1/demand                   an edge's demand report (edge credential)
 *   GET  /v1/trending?window=&limit=&category=&positions=1   (positions=1: per rendition too, for adaptive titles)
 *   GET  /v1/trending/state           this router's own counters, for peer routers (edge credential)
 *   GET  /v1/play/{contentId}?region=&viewer=   viewer: a viewer credential (lib/security/tokens signViewer), never a bare id
 *   PUT  /v1/sessions/{contentId}     {position}: the viewer comes from the play token
 *   GET  /v1/sessions/{contentId}     resume position (play token); `?local=1`: this router's store only
 *   GET  /v1/history                  the token's viewer's recent titles (a play token of any title); `?local=1` too
 *
 * A watch page (lib/watch) calls /v1/play, and a player reports sessions,
 * from a page that an edge may serve on another origin: those three answer
 * with CORS (router.corsOrigin, errors too) and take a preflight with no
 * credential; a session report's preflight allows PUT and Content-Type.
 *
 * Playback state is stored where a report lands and looked up on every router
 * (router/playback/session-peers.ts): without `local=1` an answer is the latest of this
 * router's and its peers'.
 */
export interface PlaybackDeps {
  manifests: Manifests
  catalog: Catalog
  edges: EdgeRegistry
  trending: Trending
  sessions: Sessions
  /** lookups across router.peers */
  sessionPeers: SessionPeers
  historyLength: number
  regions: RegionMap
  ring: KeyRing | undefined
  edgeToken: string | undefined
  originUrl: () => string
  ttlMs: number
  /** lifetime of the viewer credentials /v1/play hands out */
  viewerTtlMs: number
  /** body limits (router.maxEdgeReportBytes, router.maxPositionReportBytes): past them, 413 */
  maxEdgeReportBytes: number
  maxPositionReportBytes: number
  bindNetwork: boolean
  /** router.corsOrigin: Access-Control-Allow-Origin of the routes a watch page calls */
  corsOrigin: string
  logger: Logger
  clock: () => number
  /** issue 17 (docs/steering.md): the order of a play answer's edges, a title's owner count, their metrics */
  steering?: Steering
  hot?: HotTitles
  steeringMetrics?: RouterSteeringMetrics
}

const REGION = /^[A-Z]{2}$/

/** what a router without the play-token keys answers its playback routes, and says once at start (router/main.ts) */
export const NO_TOKEN_KEYS = 'play tokens are not configured on this router: set REELCDN_TOKEN_KEYS or router.tokenKeysFile'

type Handler = (req: IncomingMessage, res: ServerResponse, m: Match) => unknown

export function playbackRoutes(d: PlaybackDeps): Route[] {
  const edgeOnly = (req: IncomingMessage) => {
    requireBearer(req, d.edgeToken, 'edge registration is disabled: set REELCDN_EDGE_TOKEN or router.edgeTokenFile')
  }
  const ring = (): KeyRing => {
    if (!d.ring) throw new NotConfiguredError(NO_TOKEN_KEYS)
    return d.ring
  }
  const claims = (req: IncomingMessage, m: Match, contentId: string | undefined) => {
    const token = requestToken(m.query, req.headers.authorization)
    const c = verifyToken(ring(), token, { contentId: contentId ?? '', clientIp: req.socket.remoteAddress ?? '', now: d.clock() / 1000 })
    if (!c.vid) throw new BadRequestError('the play token carries no viewer id')
    return c
  }
  // a route a page of another origin calls: CORS on every answer, errors included (lib/http/http.ts keeps these headers)
  const cross = (h: Handler): Handler => (req, res, m) => {
    cors(res, d.corsOrigin)
    return h(req, res, m)
  }
  const reads = { OPTIONS: (_req: IncomingMessage, res: ServerResponse) => preflight(res, d.corsOrigin) }
  return [
    { path: '/v1/edges/heartbeat', methods: { POST: async (req, res) => {
      edgeOnly(req)
      const now = d.clock()
      let hb
      try {
        hb = parseHeartbeat(await readJson(req, d.maxEdgeReportBytes))
        d.edges.heartbeat(hb, now)
      } catch (err) {
        // an edge's mistake: counted by the field that was wrong, answered 400 naming it (not an operator's error log)
        if (err instanceof HeartbeatRefusedError) d.steeringMetrics?.refused.inc({ reason: err.reason })
        else if (err instanceof BadRequestError) d.steeringMetrics?.refused.inc({ reason: 'body' })
        throw err
      }
      sendJson(res, 200, { id: hb.id, accepted: true, ...siteView(d, hb.site, now) })
    } } },
    { path: '/v1/edges/state', methods: { GET: (req, res) => {
      // what peer routers merge (router/playback/edge-peers.ts): only heartbeats this router received itself
      edgeOnly(req)
      sendJson(res, 200, { edges: d.edges.own(d.clock()) }, { 'cache-control': 'no-store' })
    } } },
    { path: '/v1/demand', methods: { POST: async (req, res) => {
      edgeOnly(req)
      const report = parseDemandReport(await readJson(req, d.maxEdgeReportBytes))
      d.trending.record(report, d.clock())
      d.hot?.invalidate()
      sendJson(res, 200, { titles: report.titles.length })
    } } },
    { path: '/v1/trending', methods: { GET: (req, res, m) => trending(d, res, m) } },
    { path: '/v1/trending/state', methods: { GET: (req, res) => {
      // every title's counters, for peer routers (trending-peers.ts): large, and not the public top list
      edgeOnly(req)
      const now = d.clock()
      sendJson(res, 200, { routerId: d.trending.routerId, at: now, state: d.trending.own.snapshot() })
    } } },
    { path: '/v1/play/:id', methods: { ...reads, GET: cross(async (req, res, m) => {
      const id = parseContentId(m.params[0]!)
      const q = queryParams(m)
      const region = q.get('region') ?? undefined
      if (region !== undefined && !REGION.test(region)) throw new BadRequestError(`expected region to be an ISO 3166-1 alpha-2 code such as FR, got ${JSON.stringify(region)}`)
      const r = ring()
      const now = d.clock()
      // a named viewer must prove it: its tokens read and overwrite that viewer's positions and history
      const named = q.get('viewer') ?? undefined
      const viewer = named === undefined ? randomBytes(12).toString('base64url') : verifyViewer(r, named, now / 1000)
      const man = await d.manifests.get(id)
      const answer = play(man, { ip: req.socket.remoteAddress, region, viewerId: viewer, now }, d.edges, d.regions,
        { ring: r, ttlMs: d.ttlMs, bindNetwork: d.bindNetwork, originUrl: d.originUrl(), limit: 10,
          ...(d.steering ? { steering: d.steering } : {}), steered: (choice, edge) => {
            d.steeringMetrics?.steered.inc({ choice })
            if (edge !== undefined) d.steeringMetrics?.plays.inc({ edge })
          } })
      // a viewer id made up just now has no state anywhere: no store or peer lookup
      const resume = named === undefined ? undefined : await d.sessionPeers.position(viewer, id, d.sessions.get(viewer, id), now)
      const credential = signViewer(r, viewer, Math.floor((now + d.viewerTtlMs) / 1000))
      sendJson(res, 200, { ...answer, viewer: credential, resume: resume ? { position: resume.position, updatedAt: resume.updatedAt } : null },
        { 'cache-control': 'no-store' })
    }) } },
    { path: '/v1/sessions/:id', methods: {
      OPTIONS: (_req, res) => preflight(res, d.corsOrigin, { allow: 'GET, HEAD, PUT, OPTIONS', methods: 'GET, HEAD, PUT, OPTIONS', headers: 'Content-Type' }),
      PUT: cross(async (req, res, m) => {
        const id = parseContentId(m.params[0]!)
        const c = claims(req, m, id)
        const body = await readJson(req, d.maxPositionReportBytes) as { position?: unknown }
        const man = await d.manifests.get(id)
        const pos = body?.position
        const scale = positionScale(man)
        if (typeof pos !== 'number' || !Number.isInteger(pos) || pos < 0 || pos > scale.size)
          throw new BadRequestError(`expected position to be ${scale.what} from 0 to ${scale.size}, got ${JSON.stringify(pos)}`)
        const now = d.clock()
        d.sessions.report(c.vid!, { contentId: id, position: pos, size: scale.size, updatedAt: now })
        // a position report is one read at that position: it feeds the per-slice demand prefill ranks by
        d.trending.own.add(`${id}#${scale.slice(pos)}`, 1, now)
        sendJson(res, 200, { contentId: id, viewerId: c.vid, position: pos, updatedAt: now })
      }),
      GET: cross(async (req, res, m) => {
        const id = parseContentId(m.params[0]!)
        const c = claims(req, m, id)
        const own = d.sessions.get(c.vid!, id)
        const p = localOnly(m) ? own : await d.sessionPeers.position(c.vid!, id, own, d.clock())
        if (!p) return sendJson(res, 404, { error: { code: 'CDN_ERR_NOT_FOUND', message: `no position for this viewer in ${id}` } })
        sendJson(res, 200, { ...p, viewerId: c.vid }, { 'cache-control': 'no-store' })
      }) } },
    { path: '/v1/history', methods: { ...reads, GET: cross(async (req, res, m) => {
      // any title's token names the viewer: verify it against its own title
      const token = requestToken(m.query, req.headers.authorization)
      const cid = token ? peekCid(token) : undefined
      const c = claims(req, m, cid)
      const own = d.sessions.history(c.vid!)
      const history = localOnly(m) ? own : await d.sessionPeers.history(c.vid!, c.cid, own, d.historyLength, d.clock())
      sendJson(res, 200, { viewerId: c.vid, history }, { 'cache-control': 'no-store' })
    }) } },
  ]
}

/**
 * What a position means: a byte offset into a single-file title; for an
 * adaptive title, whose renditions have different bytes at one moment, the
 * milliseconds from its start (docs/abr.md, "Sessions"). `size` is what it
 * goes up to (bytes, or the duration in ms), `slice` its demand slice.
 */
function positionScale(man: Manifest): { what: string; size: number; slice: (pos: number) => number } {
  if (!isAdaptive(man)) return { what: 'a byte offset', size: man.size, slice: pos => sliceOf(Math.floor(pos / man.chunkSize), man.chunks.length) }
  const size = Math.round(titleDuration(man) * 1000)
  return { what: 'milliseconds from the start of this adaptive title', size, slice: pos => Math.min(SLICES - 1, Math.floor((pos / Math.max(1, size)) * SLICES)) }
}

/**
 * What a heartbeat's answer tells an edge of a site (the contract of issue 17,
 * docs/steering.md): the site's live members with their affinity weights, the
 * sender included, and the titles with more than one owner there. Nothing for
 * an edge that declares no site.
 */
function siteView(d: PlaybackDeps, site: string | undefined, now: number) {
  if (site === undefined) return {}
  const members = d.edges.siteMembers(site, now)
  // by demand (hot-titles.ts) and by the load bound (steering.ts), the larger count of each title
  const hot = new Map<string, number>()
  for (const h of [...(d.hot?.hot(members.length, now) ?? []), ...(d.steering?.spilled(site, now) ?? [])])
    hot.set(h.contentId, Math.min(members.length, Math.max(h.owners, hot.get(h.contentId) ?? 0)))
  return { site: { id: site, members }, hot: [...hot].filter(([, owners]) => owners > 1).slice(0, HOT_LIMIT).map(([contentId, owners]) => ({ contentId, owners })) }
}

function localOnly(m: Match): boolean {
  return queryParams(m).get('local') === '1'
}

function peekCid(token: string): string | undefined {
  try {
    const cid = (JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as { cid?: unknown }).cid
    return typeof cid === 'string' ? cid : undefined
  } catch {
    return undefined
  }
}

function trending(d: PlaybackDeps, res: ServerResponse, m: Match): void {
  const q = queryParams(m)
  const window = q.get('window') ?? '1h'
  if (window !== '5m' && window !== '1h' && window !== '24h') throw new BadRequestError(`expected window to be 5m, 1h or 24h, got ${JSON.stringify(window)}`)
  const limitRaw = q.get('limit') ?? '20'
  const limit = Number(limitRaw)
  if (!/^[0-9]+$/.test(limitRaw) || limit < 1 || limit > 10_000) throw new BadRequestError(`expected limit to be an integer from 1 to 10000, got ${JSON.stringify(limitRaw)}`)
  const category = q.get('category')
  const withPositions = q.get('positions') === '1' || q.get('positions') === 'true'
  const now = d.clock()
  const filter = category === null ? undefined : (id: string) => {
    const item = d.catalog.get(id)
    return item !== undefined && item.categories.some(c => c.localeCompare(category, undefined, { sensitivity: 'base' }) === 0)
  }
  const top = d.trending.top(window as WindowName, now, limit, filter)
  // with positions, an adaptive title's counts per rendition too (what an edge's prefill weighs rungs by)
  const renditions = withPositions ? d.trending.renditions(new Set(top.map(t => t.contentId)), window as WindowName, now) : undefined
  sendJson(res, 200, {
    window, at: new Date(now).toISOString(),
    titles: top.map(t => {
      const item = d.catalog.get(t.contentId)
      const r = renditions?.get(t.contentId)
      return { contentId: t.contentId, plays: t.plays, title: item?.title ?? null, categories: item?.categories ?? [],
        ...(withPositions ? { positions: d.trending.positions(t.contentId, now) } : {}), ...(r ? { renditions: r } : {}) }
    }),
  })
}
