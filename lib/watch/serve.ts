import type { IncomingMessage, ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { NotFoundError } from '../errors.js'
import { planResponse, sendPlanned, type Representation } from '../representation.js'
import { asset, ASSET_NAMES, WATCH_CSP } from './assets.js'
import { watchPage, type WatchOptions } from './page.js'

/**
 * Answering `GET /watch/{contentId}` and `GET /assets/{name}` (lib/watch/
 * page.ts, assets.ts) for any service that mounts them: the router and the
 * edge. Both are representations like a title's (lib/representation.ts), so
 * they get the same contract: a strong ETag (the body's SHA-256), Last-Modified,
 * If-None-Match → 304, HEAD and ranges.
 *
 * Caching: the page is `no-cache` (revalidated on every load, a 304 when
 * nothing changed: it names the play API, which an operator may move), the
 * scripts an hour (`max-age=3600`; their ETag revalidates them after). Both are
 * `nosniff`. The page carries WATCH_CSP (scripts from 'self' only, media and
 * API calls to any http(s) server, since /v1/play may rank edges anywhere) and
 * `Referrer-Policy: no-referrer`, so the tokened URLs it plays never leave in
 * a Referer. Nothing here calls another service: the page's own script asks
 * the play API, from the viewer's browser.
 */
const STARTED = Date.now()
const ASSET_CACHE = 'public, max-age=3600'
const PAGE_HEADERS = { 'content-security-policy': WATCH_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' }
const ASSET_HEADERS = { 'x-content-type-options': 'nosniff' }

/** GET/HEAD of the watch page of `o.contentId` (checked by the caller). */
export function sendWatchPage(req: IncomingMessage, res: ServerResponse, o: WatchOptions, maxRanges: number): Promise<void> {
  const body = Buffer.from(watchPage(o), 'utf8')
  const rep: Representation = {
    size: body.length, etag: `"${createHash('sha256').update(body).digest('hex')}"`, lastModified: STARTED,
    contentType: 'text/html; charset=utf-8', cacheControl: 'no-cache', extra: PAGE_HEADERS,
  }
  return sendBody(req, res, rep, body, maxRanges)
}

const assetReps = new Map<string, Representation>()

/** GET/HEAD of a watch page asset, or a 404 naming the assets there are. */
export function sendAsset(req: IncomingMessage, res: ServerResponse, name: string, maxRanges: number): Promise<void> {
  const a = asset(name)
  if (a === undefined) throw new NotFoundError(`asset ${JSON.stringify(name.slice(0, 64))} (the assets are ${ASSET_NAMES.join(', ')})`)
  let rep = assetReps.get(name)
  if (rep === undefined) {
    rep = { size: a.body.length, etag: a.etag, lastModified: STARTED, contentType: a.contentType, cacheControl: ASSET_CACHE, extra: ASSET_HEADERS, reused: true }
    assetReps.set(name, rep)
  }
  return sendBody(req, res, rep, a.body, maxRanges)
}

function sendBody(req: IncomingMessage, res: ServerResponse, rep: Representation, body: Buffer, maxRanges: number): Promise<void> {
  const plan = planResponse(req, rep, maxRanges)
  return sendPlanned(res, plan, body.length, async (s, e, r) => void r.write(body.subarray(s, e + 1)))
}
