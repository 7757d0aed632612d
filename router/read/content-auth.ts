import type { IncomingMessage } from 'node:http'
import { bearerMatchesAny } from '../../lib/security/auth.js'
import { UnauthorizedError } from '../../lib/errors.js'
import { requestToken, verifyToken, type KeyRing } from '../../lib/security/tokens.js'

/**
 * Who may read a title from the router (`GET`/`HEAD /v1/content/{id}`,
 * `/meta`, `/chunks/{i}`, `/chunks/{i}/crcs`, and an adaptive title's
 * playlists, renditions and rendition chunks). Two kinds of reader reach these routes:
 *   - edges filling their cache: they send their upstream credential
 *     (`REELCDN_EDGE_UPSTREAM_TOKEN`), which is the router's read token or its
 *     admin token, as `Authorization: Bearer`; they hold no play token;
 *   - players sent here by `/v1/play` (the origin URL, last in the list): the
 *     URL carries the play token as `?token=`, or, for an adaptive title, as
 *     a path segment (`/v1/content/{id}/t/{token}/master.m3u8`), which
 *     survives a player's resolving of the playlists' relative URIs where a
 *     query does not. Both are the same "token in the URL" below; the path's
 *     wins when a request has both.
 *
 * Decisions, in order:
 *   1. neither `router.requireToken` nor a read token: reads are open;
 *   2. a Bearer equal to the read or admin token: an edge (or operator), allowed;
 *   3. a play token, when token keys are configured and either
 *      `requireToken` is on (`?token=` or Bearer) or the URL carries one
 *      (`?token=`, so the origin URL of /v1/play works behind a read token): verified in
 *      full for this title (HMAC, key id, title, expiry, client network) → 403
 *      with the reason (missing, malformed, tampered, expired, wrong network…);
 *   4. otherwise (a read token is set, no play token): 401.
 * So a router behind edges can require play tokens of players without
 * changing how edges authenticate. Every acceptable token is compared, in
 * constant time, whatever matched first.
 */
export interface ContentAuthOptions {
  readToken: string | undefined
  adminToken: string | undefined
  /** token keys, when configured */
  ring: KeyRing | undefined
  requireToken: boolean
  clock?: () => number
}

/** `pathToken`: the `{token}` of a `/t/{token}/` path, when the route has one */
export type ContentCheck = (req: IncomingMessage, query: string, contentId: string, pathToken?: string) => void

/** The check for content reads, or undefined when reads are open. */
export function contentAuth(o: ContentAuthOptions): ContentCheck | undefined {
  if (!o.requireToken && o.readToken === undefined) return undefined
  const clock = o.clock ?? Date.now
  const credentials = [o.readToken, o.adminToken]
  return (req, query, contentId, pathToken) => {
    if (bearerMatchesAny(req, credentials)) return
    const h = req.headers.authorization
    // without requireToken only a token in the URL is taken for a play token: a wrong Bearer stays a 401, as for any credential
    const token = pathToken ?? (o.requireToken ? requestToken(query, h) : requestToken(query, undefined))
    if (o.ring !== undefined && (o.requireToken || token !== undefined)) {
      verifyToken(o.ring, token, { contentId, clientIp: req.socket.remoteAddress ?? '', now: clock() / 1000 })
      return
    }
    throw new UnauthorizedError()
  }
}
