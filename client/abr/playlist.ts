import { CdnError } from '../../lib/errors.js'

/**
 * HLS playlists as a player reads them (RFC 8216): the master playlist's
 * variants (EXT-X-STREAM-INF) and audio renditions (EXT-X-MEDIA), and a media
 * playlist's init section (EXT-X-MAP, with or without BYTERANGE) and segments
 * (EXTINF, EXT-X-BYTERANGE with or without an offset).
 *
 * Every URI is kept twice: as written (`uri`) and resolved against the
 * playlist's own URL (`url`, RFC 3986 §5). The written form lets a player move
 * to another server: the same relative URIs resolved against that server's
 * master URL (lib/media/hls.ts writes only relative ones), which keeps a play
 * token that is a path segment of the master's URL (docs/abr.md); a `?token=`
 * query on the master is not carried over, as RFC 3986 resolution drops it.
 *
 * What this player does not play is refused by name, not misread: encrypted
 * segments (EXT-X-KEY other than NONE), a byte range without an offset whose
 * previous segment was another resource, a playlist that is neither master
 * nor media.
 */
export class PlaylistError extends CdnError {
  override name = 'PlaylistError'
  constructor(url: string, message: string) {
    super(`${url}: ${message}`, { code: 'CDN_ERR_PLAYLIST', statusCode: 502, source: 'upstream' })
  }
}

export interface ByteRange {
  offset: number
  /** undefined: to the end of the resource (no BYTERANGE) */
  length: number | undefined
}

export interface Variant {
  uri: string
  url: string
  /** BANDWIDTH: peak bits per second, audio included */
  bandwidth: number
  averageBandwidth: number | undefined
  codecs: string | undefined
  width: number | undefined
  height: number | undefined
  frameRate: number | undefined
  /** GROUP-ID of its audio renditions (AUDIO) */
  audio: string | undefined
}

export interface AudioRendition {
  groupId: string
  name: string
  /** undefined: the audio is muxed into the variants */
  uri: string | undefined
  url: string | undefined
  default: boolean
}

export interface MasterPlaylist {
  url: string
  /** ascending by BANDWIDTH: the order a ladder's rungs are numbered in here (0 is the lowest) */
  variants: Variant[]
  audio: AudioRendition[]
}

export interface Segment {
  uri: string
  url: string
  range: ByteRange
  /** seconds (EXTINF) */
  duration: number
  /** seconds from the playlist's start */
  start: number
}

export interface MediaPlaylist {
  url: string
  targetDuration: number
  endList: boolean
  init: { uri: string; url: string; range: ByteRange } | undefined
  segments: Segment[]
  /** seconds: the sum of the segments' durations */
  duration: number
}

/** The tags and URI lines of a playlist, after the #EXTM3U check. */
function lines(text: string, url: string): string[] {
  const out = text.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '')
  if (out[0] !== '#EXTM3U') throw new PlaylistError(url, 'not an HLS playlist: the first line is not #EXTM3U')
  return out.slice(1).filter(l => !l.startsWith('#') || l.startsWith('#EXT'))
}

/** An attribute list (RFC 8216 §4.2): NAME=value pairs, comma-separated, where a quoted string may hold commas. */
export function parseAttributes(s: string, url = 'playlist'): Map<string, string> {
  const out = new Map<string, string>()
  const re = /\s*([A-Z0-9-]+)=("[^"\r\n]*"|[^,]*)\s*(,|$)/y
  let at = 0
  while (at < s.length) {
    re.lastIndex = at
    const m = re.exec(s)
    if (!m) throw new PlaylistError(url, `malformed attribute list at ${JSON.stringify(s.slice(at, at + 40))}`)
    const v = m[2]!
    out.set(m[1]!, v.startsWith('"') ? v.slice(1, -1) : v.trim())
    at = re.lastIndex
    if (m[3] === '') break
  }
  return out
}

function tag(line: string): [string, string] {
  const i = line.indexOf(':')
  return i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1)]
}

function decimal(url: string, name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new PlaylistError(url, `${name} must be a decimal integer, got ${JSON.stringify(v)}`)
  return Number(v)
}

function resolve(uri: string, base: string, url: string): string {
  try {
    return new URL(uri, base).href
  } catch {
    throw new PlaylistError(url, `URI ${JSON.stringify(uri)} does not resolve against ${base}`)
  }
}

/** `n[@o]` (EXT-X-BYTERANGE, EXT-X-MAP's BYTERANGE): o undefined when absent. */
function byteRange(url: string, v: string): { length: number; offset: number | undefined } {
  const m = /^([0-9]+)(?:@([0-9]+))?$/.exec(v)
  if (!m) throw new PlaylistError(url, `a byte range is n[@o], got ${JSON.stringify(v)}`)
  return { length: Number(m[1]), offset: m[2] === undefined ? undefined : Number(m[2]) }
}

export function parseMaster(text: string, url: string): MasterPlaylist {
  const ls = lines(text, url)
  const variants: Variant[] = []
  const audio: AudioRendition[] = []
  for (let i = 0; i < ls.length; i++) {
    const [name, value] = tag(ls[i]!)
    if (name === '#EXTINF') throw new PlaylistError(url, 'a media playlist where a master playlist was expected')
    if (name === '#EXT-X-MEDIA') {
      const a = parseAttributes(value, url)
      if (a.get('TYPE') !== 'AUDIO') continue
      const groupId = a.get('GROUP-ID')
      if (groupId === undefined) throw new PlaylistError(url, 'EXT-X-MEDIA without GROUP-ID')
      const uri = a.get('URI')
      audio.push({ groupId, name: a.get('NAME') ?? '', uri, url: uri === undefined ? undefined : resolve(uri, url, url), default: a.get('DEFAULT') === 'YES' })
    } else if (name === '#EXT-X-STREAM-INF') {
      const a = parseAttributes(value, url)
      const uri = ls[i + 1]
      if (uri === undefined || uri.startsWith('#')) throw new PlaylistError(url, 'EXT-X-STREAM-INF is not followed by a URI line')
      i++
      const bandwidth = decimal(url, 'BANDWIDTH', a.get('BANDWIDTH'))
      if (bandwidth === undefined || bandwidth <= 0) throw new PlaylistError(url, `the variant ${uri} has no BANDWIDTH`)
      const res = a.get('RESOLUTION')
      const wh = res === undefined ? undefined : /^([0-9]+)x([0-9]+)$/.exec(res)
      if (res !== undefined && !wh) throw new PlaylistError(url, `RESOLUTION is WxH, got ${JSON.stringify(res)}`)
      const fr = a.get('FRAME-RATE')
      variants.push({
        uri, url: resolve(uri, url, url), bandwidth, averageBandwidth: decimal(url, 'AVERAGE-BANDWIDTH', a.get('AVERAGE-BANDWIDTH')),
        codecs: a.get('CODECS'), width: wh ? Number(wh[1]) : undefined, height: wh ? Number(wh[2]) : undefined,
        frameRate: fr === undefined ? undefined : Number(fr), audio: a.get('AUDIO'),
      })
    }
  }
  if (variants.length === 0) throw new PlaylistError(url, 'a master playlist with no variant (EXT-X-STREAM-INF)')
  variants.sort((a, b) => a.bandwidth - b.bandwidth)
  return { url, variants, audio }
}

export function parseMedia(text: string, url: string): MediaPlaylist {
  const ls = lines(text, url)
  let targetDuration: number | undefined
  let endList = false
  let init: MediaPlaylist['init']
  const segments: Segment[] = []
  let duration: number | undefined
  let range: { length: number; offset: number | undefined } | undefined
  let start = 0
  for (const line of ls) {
    if (!line.startsWith('#')) {
      if (duration === undefined) throw new PlaylistError(url, `the URI ${line} has no EXTINF before it`)
      const segUrl = resolve(line, url, url)
      let r: ByteRange = { offset: 0, length: undefined }
      if (range) {
        let offset = range.offset
        if (offset === undefined) {
          // RFC 8216 §4.3.2.2: no offset, the sub-range follows the previous segment's, which must be of the same resource
          const prev = segments[segments.length - 1]
          if (!prev || prev.url !== segUrl || prev.range.length === undefined) throw new PlaylistError(url, `EXT-X-BYTERANGE without an offset for ${line}, but the previous segment is not a sub-range of it`)
          offset = prev.range.offset + prev.range.length
        }
        r = { offset, length: range.length }
      }
      segments.push({ uri: line, url: segUrl, range: r, duration, start })
      start += duration
      duration = undefined
      range = undefined
      continue
    }
    const [name, value] = tag(line)
    switch (name) {
      case '#EXT-X-STREAM-INF': throw new PlaylistError(url, 'a master playlist where a media playlist was expected')
      case '#EXT-X-TARGETDURATION': targetDuration = decimal(url, name, value); break
      case '#EXT-X-ENDLIST': endList = true; break
      case '#EXTINF': {
        const d = Number(value.split(',')[0])
        if (!Number.isFinite(d) || d < 0) throw new PlaylistError(url, `EXTINF duration must be a number of seconds, got ${JSON.stringify(value)}`)
        duration = d
        break
      }
      case '#EXT-X-BYTERANGE': range = byteRange(url, value); break
      case '#EXT-X-MAP': {
        const a = parseAttributes(value, url)
        const uri = a.get('URI')
        if (uri === undefined) throw new PlaylistError(url, 'EXT-X-MAP without URI')
        const br = a.get('BYTERANGE')
        const r = br === undefined ? undefined : byteRange(url, br)
        init = { uri, url: resolve(uri, url, url), range: r ? { offset: r.offset ?? 0, length: r.length } : { offset: 0, length: undefined } }
        break
      }
      case '#EXT-X-KEY': {
        const method = parseAttributes(value, url).get('METHOD')
        if (method !== 'NONE') throw new PlaylistError(url, `encrypted segments (EXT-X-KEY METHOD=${method}) are not supported`)
        break
      }
    }
  }
  if (targetDuration === undefined) throw new PlaylistError(url, 'a media playlist without EXT-X-TARGETDURATION')
  if (segments.length === 0) throw new PlaylistError(url, 'a media playlist with no segment')
  return { url, targetDuration, endList, init, segments, duration: start }
}

/**
 * The URL of a URI written in a playlist, had the master been fetched from
 * `master` instead: the media playlist's URI resolved against that master,
 * then the segment's URI against the result.
 */
export function rebase(master: string, mediaUri: string, uri?: string): string {
  const media = new URL(mediaUri, master).href
  return uri === undefined ? media : new URL(uri, media).href
}

/** The audio rendition the variants name (DEFAULT=YES first), or undefined when the audio is muxed or absent. */
export function pickAudio(m: MasterPlaylist): string | undefined {
  const group = m.variants[0]!.audio
  if (group === undefined) return undefined
  const inGroup = m.audio.filter(a => a.groupId === group && a.uri !== undefined)
  return (inGroup.find(a => a.default) ?? inGroup[0])?.uri
}

/** The index of the segment holding media time `t` (seconds), or the segment count past the end. */
export function segmentAt(p: MediaPlaylist, t: number): number {
  const i = p.segments.findIndex(s => s.start + s.duration > t)
  return i < 0 ? p.segments.length : i
}
