import { DASH_TYPE, MPD, mpd } from './dash.js'
import { HLS_TYPE, MASTER, masterPlaylist, mediaPlaylist } from './hls.js'
import { isRenditionId, type Rendition } from './rendition.js'

/**
 * The files of an adaptive title under /v1/content/{id}/ (docs/abr.md), as
 * the router and the edge both name and generate them: the master playlist,
 * the MPD, a rendition's media playlist `{rid}.m3u8` and the rendition file
 * `{rid}.mp4`. Each service says in its own words what is missing; the names
 * and the playlists' bytes are the same on both.
 */
export type AdaptiveFile = { kind: 'master' } | { kind: 'mpd' } | { kind: 'media'; rid: string } | { kind: 'rendition'; rid: string }

// answered for every playlist request: no allocation for the two fixed names
const MASTER_FILE: AdaptiveFile = { kind: 'master' }
const MPD_FILE: AdaptiveFile = { kind: 'mpd' }

/** The file a path's last segment names, or undefined when it names none. */
export function adaptiveFile(name: string): AdaptiveFile | undefined {
  if (name === MASTER) return MASTER_FILE
  if (name === MPD) return MPD_FILE
  const dot = name.lastIndexOf('.')
  if (dot <= 0) return undefined
  const rid = name.slice(0, dot)
  if (!isRenditionId(rid)) return undefined
  const ext = name.slice(dot + 1)
  return ext === 'm3u8' ? { kind: 'media', rid } : ext === 'mp4' ? { kind: 'rendition', rid } : undefined
}

/** A playlist's body and content type: the master or MPD of `renditions`, or `media`'s own playlist. */
export function playlistBody(renditions: readonly Rendition[], kind: 'master' | 'mpd' | 'media', media?: Rendition): { body: Buffer; type: string } {
  if (kind === 'mpd') return { body: Buffer.from(mpd(renditions), 'utf8'), type: DASH_TYPE }
  const text = kind === 'master' ? masterPlaylist(renditions) : mediaPlaylist(media!)
  return { body: Buffer.from(text, 'utf8'), type: HLS_TYPE }
}
