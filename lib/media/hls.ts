import type { Rendition } from './rendition.js'
import { segmentOffsets } from './rendition.js'

/**
 * HLS playlists (RFC 8216, protocol version 6) of an adaptive title, generated
 * from its renditions: the router and the edge answer byte-identical playlists
 * from the same manifest. Every segment is a byte range of its rendition's one
 * file (`EXT-X-MAP` for the init segment, `EXT-X-BYTERANGE` for each media
 * segment). Every URI is relative (`v720.m3u8`, `v720.mp4`), so a player that
 * resolves them against the master's URL stays under whatever path the master
 * was fetched from — a play token in that path included.
 *
 * Variants are video rungs, highest first; the audio rendition (if any) is one
 * `EXT-X-MEDIA` group every variant refers to, and its peak and average bit
 * rates are added to each variant's BANDWIDTH and AVERAGE-BANDWIDTH, since a
 * player fetches both.
 */
export const HLS_TYPE = 'application/vnd.apple.mpegurl'
export const MASTER = 'master.m3u8'
const AUDIO_GROUP = 'aud'

export function playlistName(r: Pick<Rendition, 'id'>): string {
  return `${r.id}.m3u8`
}

export function fileName(r: Pick<Rendition, 'id'>): string {
  return `${r.id}.mp4`
}

/** Video rungs, highest first (then by bandwidth): the order players and people read a ladder in. */
export function videoRungs(rs: readonly Rendition[]): Rendition[] {
  return rs.filter(r => r.type === 'video').sort((a, b) => (b.height ?? 0) - (a.height ?? 0) || b.bandwidth - a.bandwidth)
}

export function masterPlaylist(rs: readonly Rendition[]): string {
  const audio = rs.find(r => r.type === 'audio')
  const lines = ['#EXTM3U', '#EXT-X-VERSION:6', '#EXT-X-INDEPENDENT-SEGMENTS']
  if (audio) {
    const ch = audio.channels !== undefined ? `,CHANNELS="${audio.channels}"` : ''
    lines.push(`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="${AUDIO_GROUP}",NAME="audio",DEFAULT=YES,AUTOSELECT=YES${ch},URI="${playlistName(audio)}"`)
  }
  for (const v of videoRungs(rs)) {
    const attrs = [
      `BANDWIDTH=${v.bandwidth + (audio?.bandwidth ?? 0)}`,
      `AVERAGE-BANDWIDTH=${v.averageBandwidth + (audio?.averageBandwidth ?? 0)}`,
      `CODECS="${audio ? `${v.codecs},${audio.codecs}` : v.codecs}"`,
      `RESOLUTION=${v.width}x${v.height}`,
    ]
    if (v.frameRate !== undefined) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`)
    if (audio) attrs.push(`AUDIO="${AUDIO_GROUP}"`)
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, playlistName(v))
  }
  return lines.join('\n') + '\n'
}

export function mediaPlaylist(r: Rendition): string {
  const at = segmentOffsets(r)
  const secs = r.segments.durations.map(d => d / r.timescale)
  const file = fileName(r)
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:6',
    // rounded to the nearest second, and never below a segment's (rounded) duration (RFC 8216 4.3.3.1)
    `#EXT-X-TARGETDURATION:${Math.max(1, ...secs.map(s => Math.round(s)))}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-INDEPENDENT-SEGMENTS',
    `#EXT-X-MAP:URI="${file}",BYTERANGE="${r.init}@0"`,
  ]
  for (let i = 0; i < secs.length; i++) {
    lines.push(`#EXTINF:${secs[i]!.toFixed(6)},`, `#EXT-X-BYTERANGE:${at[i + 1]! - at[i]!}@${at[i]}`, file)
  }
  lines.push('#EXT-X-ENDLIST')
  return lines.join('\n') + '\n'
}
