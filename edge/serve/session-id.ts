import type { IncomingMessage } from 'node:http'
import { peerAddress } from '../../lib/http/http.js'
import type { TitleFile } from '../title.js'

/**
 * Who a player request belongs to, for session-aware retention and the
 * request log. A play token (in the path, `/v1/content/{id}/t/{token}/…`, or
 * the query, `?token=`: lib/security/tokens.ts) names its viewer in the `vid` claim:
 * then the session is that viewer and title, wherever the viewer's address
 * moves. Without a token (or without `vid`) it is the client address and the
 * title.
 *
 * An adaptive title is read as two streams of one session, its video and its
 * audio (`streamOf`): each has a position of its own, and a rung switch moves
 * the video stream from one rendition to the other, leaving the audio where it
 * is (edge/policy/session-tracker.ts).
 *
 * @NOTE this reads the claims without checking the signature: a session id is
 * only a hint for which chunks to keep, never an authorization, and the token
 * check (issue 5) runs on its own. A forged `vid` can at worst protect a few
 * chunks, as any player that reads them does anyway.
 *
 * Cost: one string per request; a token's payload is decoded only if present.
 */
const PREFIX = '/v1/content/'

export function sessionOf(req: IncomingMessage, contentId: string): string {
  const url = req.url ?? ''
  const vid = viewerOf(tokenOf(url, contentId))
  if (vid !== undefined) return `v:${vid}|${contentId}`
  return `a:${peerAddress(req) ?? '?'}|${contentId}`
}

/** The play token of a request target: the path's `/t/{token}/`, else the query's `token=`; '' if none. */
function tokenOf(url: string, contentId: string): string {
  const path = url.indexOf('/t/', PREFIX.length + contentId.length)
  const q = url.indexOf('?')
  if (path > 0 && (q < 0 || path < q)) {
    const end = url.indexOf('/', path + 3)
    if (end > 0) return url.slice(path + 3, end)
  }
  const at = url.indexOf('token=')
  if (at > 0 && (url[at - 1] === '?' || url[at - 1] === '&')) {
    const end = url.indexOf('&', at)
    return url.slice(at + 6, end < 0 ? undefined : end)
  }
  return ''
}

/** The session's stream that reads `file`: the session itself for a single-file title, `session#video` or `session#audio` for a rendition. */
export function streamOf(session: string, file: Pick<TitleFile, 'rendition' | 'kind'>): string {
  return file.rendition === undefined ? session : `${session}#${file.kind}`
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
