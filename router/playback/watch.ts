import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { NotFoundError } from '../../lib/errors.js'
import type { Route } from '../../lib/http.js'
import { parseContentId } from '../../lib/ids.js'
import { planResponse, sendPlanned, type Representation } from '../../lib/representation.js'
import { watchPage } from '../../lib/watch/page.js'
import { ASSET_NAMES, asset, WATCH_CSP } from '../../lib/watch/assets.js'
import type { Manifests } from '../cluster/manifests.js'

/**
 * The router's watch page (issue 15): `GET /watch/{contentId}` and the
 * scripts it loads, `GET /assets/{name}` (hls.min.js, dash.all.min.js,
 * watch.js). The page and scripts are lib/watch's, as the edge serves them;
 * here the page asks this router's own `/v1/play` (same origin: `playApi` '').
 *
 * The page is answered only for a title that exists (a 404 naming it
 * otherwise, before any HTML), with the CSP that lets it run its own scripts
 * and nothing else, and `no-cache`: it is tiny and names no version, so a
 * browser revalidates it (ETag, 304) and always gets the current scripts'
 * tags. Scripts are immutable for a running process: a strong ETag (their
 * SHA-256) and an hour's `max-age`; a new install changes their tag. Both are
 * read-only and public, like `/v1/play` itself: the page holds no token; it
 * gets one from `/v1/play` as any player does.
 */
export interface WatchDeps {
  manifests: Manifests
  maxRanges: number
}

/** Last-Modified of the page and scripts: they change with the install, so with the process. */
const STARTED = Date.now()
const ASSET_MAX_AGE_S = 3600
const pages = new Map<string, Representation & { body: Buffer }>()
const PAGE_CACHE_MAX = 1000

export function watchRoutes(d: WatchDeps): Route[] {
  return [
    { path: '/watch/:id', methods: { GET: async (req, res, m) => {
      const id = parseContentId(m.params[0]!)
      await d.manifests.get(id) // an unknown title: 404 naming it, not a page that fails later
      await send(req, res, page(id), d.maxRanges)
    } } },
    { path: '/assets/:name', methods: { GET: async (req, res, m) => {
      const name = m.params[0]!
      await send(req, res, assetRep(name), d.maxRanges)
    } } },
  ]
}

const assets = new Map<string, Representation & { body: Buffer }>()

/** An asset's representation, built once (lib/watch/assets.ts reads each file once). */
function assetRep(name: string): Representation & { body: Buffer } {
  let r = assets.get(name)
  if (r) return r
  const a = asset(name)
  if (!a) throw new NotFoundError(`asset ${JSON.stringify(name)} (the assets are ${ASSET_NAMES.join(', ')})`)
  r = { body: a.body, size: a.body.length, etag: a.etag, lastModified: STARTED, contentType: a.contentType, reused: true,
    cacheControl: `public, max-age=${ASSET_MAX_AGE_S}`, extra: { 'x-content-type-options': 'nosniff' } }
  assets.set(name, r)
  return r
}

/** A title's page, built once per id (bounded: the oldest built leaves first). */
function page(contentId: string): Representation & { body: Buffer } {
  let p = pages.get(contentId)
  if (p) return p
  const body = Buffer.from(watchPage({ contentId, playApi: '', service: 'router' }), 'utf8')
  p = { body, size: body.length, etag: `"${createHash('sha256').update(body).digest('hex')}"`, lastModified: STARTED,
    contentType: 'text/html; charset=utf-8', cacheControl: 'no-cache', reused: true,
    extra: { 'content-security-policy': WATCH_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' } }
  if (pages.size >= PAGE_CACHE_MAX) pages.delete(pages.keys().next().value!)
  pages.set(contentId, p)
  return p
}

async function send(req: IncomingMessage, res: ServerResponse, rep: Representation & { body: Buffer }, maxRanges: number): Promise<void> {
  const plan = planResponse(req, rep, maxRanges)
  await sendPlanned(res, plan, rep.size, async (s, e, out) => void out.write(rep.body.subarray(s, e + 1)))
}
