import { RenditionInputError } from './errors.js'

/**
 * Just enough of RFC 8216 to take an HLS package apart: the master
 * playlist's variants and audio renditions, and a media playlist's segments
 * as (URI, byte range) with its EXT-X-MAP. Things that make a package
 * unusable as renditions are refused by name: MPEG-TS segments (no
 * EXT-X-MAP), encryption, a live or event playlist (no EXT-X-ENDLIST),
 * discontinuities (timestamps that restart cannot be joined into one file).
 */
export interface Variant { uri: string; bandwidth?: number; resolution?: string; audio?: string }
export interface AudioMedia { uri?: string; group: string; name?: string; isDefault: boolean }
export interface Master { variants: Variant[]; audio: AudioMedia[] }

/** `length` bytes from `offset`, or the whole resource when undefined */
export interface Part { uri: string; offset?: number; length?: number }
export interface MediaPlaylist { init: Part; segments: Part[] }

export function attributes(s: string): Record<string, string> {
  const out: Record<string, string> = {}
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g
  for (let m; (m = re.exec(s));) out[m[1]!] = m[2]!.startsWith('"') ? m[2]!.slice(1, -1) : m[2]!
  return out
}

function lines(text: string, where: string): string[] {
  const ls = text.replace(/^\uFEFF/, '').split(/\r?\n/).map(l => l.trim()).filter(Boolean)
  if (ls[0] !== '#EXTM3U') throw new RenditionInputError(`${where} is not an HLS playlist: it does not start with #EXTM3U`)
  return ls
}

export function isMaster(text: string): boolean {
  return /^#EXT-X-STREAM-INF:/m.test(text)
}

export function parseMaster(text: string, where: string): Master {
  const ls = lines(text, where)
  const variants: Variant[] = []
  const audio: AudioMedia[] = []
  for (let i = 0; i < ls.length; i++) {
    const l = ls[i]!
    if (l.startsWith('#EXT-X-STREAM-INF:')) {
      const a = attributes(l.slice(18))
      const uri = ls[i + 1]
      if (!uri || uri.startsWith('#')) throw new RenditionInputError(`${where}: #EXT-X-STREAM-INF without a URI on the next line`)
      i++
      variants.push({ uri, ...(a.BANDWIDTH ? { bandwidth: Number(a.BANDWIDTH) } : {}), ...(a.RESOLUTION ? { resolution: a.RESOLUTION } : {}), ...(a.AUDIO ? { audio: a.AUDIO } : {}) })
    } else if (l.startsWith('#EXT-X-MEDIA:')) {
      const a = attributes(l.slice(13))
      if (a.TYPE !== 'AUDIO') continue
      audio.push({ group: a['GROUP-ID'] ?? '', isDefault: a.DEFAULT === 'YES', ...(a.URI ? { uri: a.URI } : {}), ...(a.NAME ? { name: a.NAME } : {}) })
    }
  }
  if (variants.length === 0) throw new RenditionInputError(`${where}: a master playlist with no variants (#EXT-X-STREAM-INF)`)
  return { variants, audio }
}

export function parseMedia(text: string, where: string): MediaPlaylist {
  const ls = lines(text, where)
  let init: Part | undefined
  const segments: Part[] = []
  let range: { length: number; offset?: number } | undefined
  const next = new Map<string, number>()
  let ended = false
  for (const l of ls) {
    if (l.startsWith('#EXT-X-MAP:')) {
      if (segments.length > 0) throw new RenditionInputError(`${where}: a second EXT-X-MAP mid-playlist (the init segment changes): not one rendition file`)
      const a = attributes(l.slice(11))
      if (!a.URI) throw new RenditionInputError(`${where}: EXT-X-MAP without a URI`)
      init = { uri: a.URI, ...(a.BYTERANGE ? byterange(a.BYTERANGE, where, 0) : {}) }
      if (init.offset === undefined && init.length !== undefined) init.offset = 0
    } else if (l.startsWith('#EXT-X-KEY:')) {
      const a = attributes(l.slice(11))
      if (a.METHOD !== 'NONE') throw new RenditionInputError(`${where} is encrypted (EXT-X-KEY METHOD=${a.METHOD}): give the clear package`)
    } else if (l.startsWith('#EXT-X-BYTERANGE:')) {
      range = byterange(l.slice(17), where)
    } else if (l === '#EXT-X-DISCONTINUITY') {
      throw new RenditionInputError(`${where} has a discontinuity (#EXT-X-DISCONTINUITY): its timestamps restart, and it cannot be joined into one rendition file`)
    } else if (l === '#EXT-X-ENDLIST') {
      ended = true
    } else if (!l.startsWith('#')) {
      const part: Part = { uri: l }
      if (range) {
        part.length = range.length
        part.offset = range.offset ?? next.get(l) ?? 0
        next.set(l, part.offset + part.length)
        range = undefined
      }
      segments.push(part)
    }
  }
  if (segments.length === 0) throw new RenditionInputError(`${where}: a media playlist with no segments`)
  if (!init) {
    const ts = segments[0]!.uri.split('?')[0]!.toLowerCase().endsWith('.ts')
    throw new RenditionInputError(`${where} has no EXT-X-MAP: its segments are ${ts ? 'MPEG-TS' : 'not fragmented MP4'}, ` +
      'and only fMP4/CMAF packages can be ingested as they are (repackage with ffmpeg -hls_segment_type fmp4, or ingest the source with --renditions)')
  }
  if (!ended) throw new RenditionInputError(`${where} has no #EXT-X-ENDLIST: a live or event playlist, not a finished title`)
  return { init, segments }
}

function byterange(s: string, where: string, defaultOffset?: number): { length: number; offset?: number } {
  const m = /^(\d+)(?:@(\d+))?$/.exec(s.trim())
  if (!m) throw new RenditionInputError(`${where}: bad byte range ${JSON.stringify(s)}`)
  const offset = m[2] !== undefined ? Number(m[2]) : defaultOffset
  return { length: Number(m[1]), ...(offset !== undefined ? { offset } : {}) }
}

/** Every part is a range of one and the same resource, back to back from byte 0: that resource is the rendition file as it is. */
export function singleFile(p: MediaPlaylist): string | undefined {
  const uri = p.init.uri
  let at = 0
  for (const part of [p.init, ...p.segments]) {
    if (part.uri !== uri || part.offset === undefined || part.length === undefined || part.offset !== at) return undefined
    at += part.length
  }
  return uri
}
