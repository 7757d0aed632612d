import type { Route } from '../../lib/http/http.js'
import { parseContentId } from '../../lib/ids.js'
import { sendAsset, sendWatchPage } from '../../lib/watch/serve.js'

/**
 * The watch page on the edge (issue 15): `GET /watch/{contentId}` and the
 * scripts it loads, `GET /assets/{name}`, answered from this process alone
 * (lib/watch/serve.ts), with no upstream request and no play token: the page
 * holds no content, and the viewer's browser asks the play API for the tokened
 * URLs it then plays.
 *
 * The play API is the router's `/v1/play`: `edge.playApiUrl`, or when that is
 * empty the edge's upstream (`edge.upstream`), which is the router in every
 * deployment this project starts. An edge whose upstream is not reachable from
 * viewers' browsers (a private address) needs `edge.playApiUrl` set to the
 * router's public URL. The router answers /v1/play with CORS, since the page
 * is on the edge's origin. Read at each request: a reload that changes
 * `edge.upstream` moves the page's play API with the fills.
 */
export function watchRoutes(playApi: () => string, maxRanges: number): Route[] {
  return [
    { path: '/watch/:id', methods: {
      GET: (req, res, m) => sendWatchPage(req, res, { contentId: parseContentId(m.params[0]!), playApi: playApi().replace(/\/+$/, ''), service: 'edge' }, maxRanges) } },
    { path: '/assets/:name', methods: { GET: (req, res, m) => sendAsset(req, res, m.params[0]!, maxRanges) } },
  ]
}
