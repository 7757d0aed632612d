import { CdnError, NotFoundError } from '../../lib/errors.js'
import { MASTER } from '../../lib/media/hls.js'
import { MPD } from '../../lib/media/dash.js'
import { adaptiveFile } from '../../lib/media/files.js'

/**
 * What a player path under /v1/content/{id} names (docs/abr.md, "URLs"):
 *
 *   /v1/content/{id}                        a single-file title's bytes
 *   /v1/content/{id}/{name}                 a file of the title: master.m3u8, manifest.mpd, {rid}.m3u8, {rid}.mp4, meta
 *   /v1/content/{id}/t/{token}/{name}       the same, with a play token in the path
 *
 * The token in the path is what lets unmodified players carry it: hls.js and
 * dash.js resolve `v720.m3u8` and `v720.mp4` against the URL of the playlist
 * that named them, so every URL they build stays under `…/t/{token}/`, where a
 * `?token=` query on the master would be dropped. Both the main thread's
 * routes and the serve threads' own matcher (serve-thread.ts) read paths here.
 *
 * `master.m3u8` always names the master playlist, even for a ladder with a
 * rendition called `master` (its media playlist is then unreachable; the
 * router should refuse such an id).
 */
export type FileRequest =
  | { kind: 'master' }
  | { kind: 'mpd' }
  | { kind: 'media'; rid: string }
  | { kind: 'rendition'; rid: string }
  | { kind: 'meta' }

const META_REQ: FileRequest = { kind: 'meta' }

/** The file a path's last segment names; undefined if it names none. */
export function fileRequest(name: string): FileRequest | undefined {
  return name === 'meta' ? META_REQ : adaptiveFile(name)
}

/** As `fileRequest`, or a 404 naming what the edge serves there. */
export function parseFileRequest(contentId: string, name: string): FileRequest {
  const f = fileRequest(name)
  if (f === undefined) {
    throw new NotFoundError(`${JSON.stringify(name.slice(0, 64))} under /v1/content/${contentId}/ (the files of a title are ${MASTER}, ${MPD}, ` +
      '{rendition}.m3u8, {rendition}.mp4 and meta)')
  }
  return f
}

/** A play token as a path segment: base64url and '.' as they are; anything else percent-decoded (and then fails verification if mangled). */
export function pathToken(raw: string): string {
  if (/^[A-Za-z0-9_.-]*$/.test(raw)) return raw
  try {
    return decodeURIComponent(raw)
  } catch {
    return raw
  }
}

export interface ContentPath {
  contentId: string
  /** undefined: the title's own bytes (/v1/content/{id}) */
  name: string | undefined
  /** the token in the path, if any */
  token: string | undefined
}

/**
 * The parts of a raw request path (no query) after /v1/content/, or undefined
 * when it is not one of the three forms. The contentId is not checked here.
 */
export function splitContentPath(rest: string): ContentPath | undefined {
  const a = rest.indexOf('/')
  if (a < 0) return rest.length > 0 ? { contentId: rest, name: undefined, token: undefined } : undefined
  if (a === 0) return undefined
  const contentId = rest.slice(0, a)
  const b = rest.indexOf('/', a + 1)
  if (b < 0) return a + 1 < rest.length ? { contentId, name: rest.slice(a + 1), token: undefined } : undefined
  if (rest.slice(a + 1, b) !== 't') return undefined
  const c = rest.indexOf('/', b + 1)
  if (c <= b + 1 || c + 1 >= rest.length || rest.indexOf('/', c + 1) >= 0) return undefined
  return { contentId, name: rest.slice(c + 1), token: pathToken(rest.slice(b + 1, c)) }
}

/** GET /v1/content/{id} of an adaptive title: its bytes are its renditions, played through its playlists. */
export class AdaptiveTitleError extends CdnError {
  override name = 'AdaptiveTitleError'
  constructor(contentId: string) {
    super(`title ${contentId} is adaptive: play /v1/content/${contentId}/${MASTER} (HLS) or /v1/content/${contentId}/${MPD} (DASH)`,
      { code: 'CDN_ERR_ADAPTIVE', statusCode: 404, source: 'client' })
  }
}

/** A playlist or rendition of a single-file title. */
export class NotAdaptiveError extends CdnError {
  override name = 'NotAdaptiveError'
  constructor(contentId: string, name: string) {
    super(`title ${contentId} is a single file, without ${name}: play /v1/content/${contentId}`,
      { code: 'CDN_ERR_NOT_ADAPTIVE', statusCode: 404, source: 'client' })
  }
}
