import type { IncomingMessage } from 'node:http'
import { peerAddress } from '../../lib/http.js'

/**
 * Who a player request belongs to, for session-aware retention and the
 * request log. A play token (`?token=`, lib/tokens.ts) names its viewer in the
 * `vid` claim: then the session is that viewer and title, wherever the viewer's
 * address moves. Without a token (or without `vid`) it is the client address
 * and the title.
 *
 * @NOTE this reads the claims without checking the signature: a session id is
 * only a hint for which chunks to keep, never an authorization, and the token
 * check (issue 5) runs on its own. A forged `vid` can at worst protect a few
 * chunks, as any player that reads them does anyway.
 *
 * Cost: one string per request; a token's payload is decoded only if present.
 */
export function sessionOf(req: IncomingMessage, contentId: string): string {
  const url = req.url ?? ''
  const at = url.indexOf('token=')
  if (at > 0 && (url[at - 1] === '?' || url[at - 1] === '&')) {
    const end = url.indexOf('&', at)
    const vid = viewerOf(url.slice(at + 6, end < 0 ? undefined : end))
    if (vid !== undefined) return `v:${vid}|${contentId}`
  }
  return `a:${peerAddress(req) ?? '?'}|${contentId}`
}

/** The `vid` claim of a token's payload (base64url JSON before the dot), if it has one. */
export function viewerOf(token: string): string | undefined {
  const dot = token.indexOf('.')
  if (dot <= 0 || dot > 4096) return undefined
  try {
    const claims = JSON.parse(Buffer.from(decodeURIComponent(token.slice(0, dot)), 'base64url').toString('utf8')) as { vid?: unknown }
    return typeof claims.vid === 'string' && claims.vid.length > 0 && claims.vid.length <= 256 ? claims.vid : undefined
  } catch {
    return undefined
  }
}
