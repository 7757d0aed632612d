import type { Route } from '../../lib/http/http.js'
import { parseContentId } from '../../lib/ids.js'
import { sendAsset, sendWatchPage } from '../../lib/watch/serve.js'
import type { Manifests } from '../cluster/manifests.js'

/**
 * The router's watch page (issue 15): `GET /watch/{contentId}` and the
 * scripts it loads, `GET /assets/{name}` (hls.min.js, dash.all.min.js,
 * watch.js), answered by lib/watch/serve.ts as the edge answers them (CSP,
 * ETags, `no-cache` page, an hour's caching for scripts). Here the page asks
 * this router's own `/v1/play` (same origin: `playApi` '').
 *
 * Unlike the edge, which has no manifest at hand, the router answers a page
 * only for a title that exists: an unknown one is a 404 naming it, before any
 * HTML, rather than a page whose player fails later. Both are public, like
 * `/v1/play` itself: the page holds no token; it gets one from `/v1/play` as
 * any player does.
 */
export interface WatchDeps {
  manifests: Manifests
  maxRanges: number
}

export function watchRoutes(d: WatchDeps): Route[] {
  return [
    { path: '/watch/:id', methods: { GET: async (req, res, m) => {
      const contentId = parseContentId(m.params[0]!)
      await d.manifests.get(contentId)
      await sendWatchPage(req, res, { contentId, playApi: '', service: 'router' }, d.maxRanges)
    } } },
    { path: '/assets/:name', methods: { GET: (req, res, m) => sendAsset(req, res, m.params[0]!, d.maxRanges) } },
  ]
}
