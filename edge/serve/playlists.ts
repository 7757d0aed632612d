import { isAdaptive } from '../../lib/manifest.js'
import { MPD } from '../../lib/media/dash.js'
import { playlistBody } from '../../lib/media/files.js'
import { MASTER, playlistName } from '../../lib/media/hls.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { renditionOf } from '../../lib/manifest.js'
import { NotFoundError } from '../../lib/errors.js'
import type { Representation } from '../../lib/representation.js'
import type { Title } from '../title.js'
import { NotAdaptiveError, type FileRequest } from './content-path.js'

/**
 * An adaptive title's playlists as the edge answers them: generated from the
 * manifest by the same pure functions as the router's (lib/media/hls.ts,
 * lib/media/dash.ts), so both answer byte-identical bodies, and kept on the
 * Title (built on first request, dropped with the title's metadata), so a
 * request allocates nothing but its headers.
 *
 * Representation: the manifest's version is the ETag (it names the ladder:
 * the same ladder is the same version, and another one changes it), so
 * If-None-Match revalidates a playlist as it does a file; `max-age` is the
 * edge's metadata TTL, the time within which a deleted title stops being
 * served anyway. CORS is the server's, as for content.
 */
export interface Playlist {
  rep: Representation
  body: Buffer
}

export type PlaylistRequest = Extract<FileRequest, { kind: 'master' | 'mpd' | 'media' }>

export function playlistFileName(req: PlaylistRequest): string {
  return req.kind === 'master' ? MASTER : req.kind === 'mpd' ? MPD : playlistName({ id: req.rid })
}

/** The playlist `req` names, or NotAdaptiveError (a single-file title) / NotFoundError (no such rendition). */
export function playlistOf(title: Title, req: PlaylistRequest, maxAgeS: number): Playlist {
  const m = title.manifest
  const name = playlistFileName(req)
  const have = title.playlists.get(name) as Playlist | undefined
  if (have !== undefined) return have
  if (!isAdaptive(m)) throw new NotAdaptiveError(m.contentId, name)
  let media: Rendition | undefined
  if (req.kind === 'media') {
    media = renditionOf(m, req.rid)
    if (media === undefined) throw new NotFoundError(`rendition ${req.rid} of ${m.contentId} (it has ${m.renditions.map(x => x.id).join(', ')})`)
  }
  const { body, type } = playlistBody(m.renditions, req.kind, media)
  const p: Playlist = {
    body,
    rep: { size: body.length, etag: `"${m.version}"`, lastModified: m.createdAt, contentType: type,
      cacheControl: `public, max-age=${Math.max(0, Math.floor(maxAgeS))}`, reused: true },
  }
  title.playlists.set(name, p)
  return p
}
