import type { ServerResponse } from 'node:http'

/**
 * CORS for player routes (content, playlists, renditions, and the playback
 * API a watch page calls: /v1/play, sessions, history): script players
 * (hls.js, dash.js, Shaka) fetch them from a page of another origin, read
 * their ETag, Content-Range and length, and send Range and conditionals,
 * which takes a preflight. Errors carry the headers too (lib/http.ts keeps
 * them), so a player can read why it was refused.
 * @NOTE the edge has the same in edge/serve/server.ts, from before this file.
 */
export const CORS_EXPOSE = 'Content-Range, Content-Length, Content-Type, ETag, Accept-Ranges, Last-Modified, Repr-Digest, X-Request-Id'
export const CORS_ALLOW_HEADERS = 'Range, If-Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since, Authorization'

/** The headers of every answer of a player route; `origin` is '*' or one origin. */
export function cors(res: ServerResponse, origin: string): void {
  res.setHeader('access-control-allow-origin', origin)
  res.setHeader('access-control-expose-headers', CORS_EXPOSE)
  if (origin !== '*') res.setHeader('vary', 'Origin')
}

/**
 * Answers a CORS preflight (OPTIONS). `allow` is every method the route takes;
 * `methods` those a page of another origin may use (reads, unless the route
 * is a player's write such as a session report), `headers` request headers it
 * may send beyond CORS_ALLOW_HEADERS (Content-Type for a JSON body).
 */
export function preflight(res: ServerResponse, origin: string, o: { allow?: string; methods?: string; headers?: string } = {}): void {
  cors(res, origin)
  res.writeHead(204, {
    'access-control-allow-methods': o.methods ?? 'GET, HEAD, OPTIONS',
    'access-control-allow-headers': o.headers ? `${CORS_ALLOW_HEADERS}, ${o.headers}` : CORS_ALLOW_HEADERS,
    'access-control-max-age': '86400',
    allow: o.allow ?? o.methods ?? 'GET, HEAD, OPTIONS',
  })
  res.end()
}
