import type { Rendition } from './rendition.js'
import { durationSeconds, segmentOffsets } from './rendition.js'
import { fileName, videoRungs } from './hls.js'

/**
 * The DASH MPD (ISO/IEC 23009-1, static) of an adaptive title: the same
 * rendition files as the HLS playlists, addressed the same way — one BaseURL
 * per Representation (relative, so a play token in the MPD's path carries
 * over), the init segment as `Initialization@range`, each media segment as a
 * `SegmentURL@mediaRange`, and their durations in a SegmentTimeline (from the
 * first segment's decode time, tfdt). A ladder whose earliest first segment
 * is decoded past 0 (a package cut from a live stream) gives that time as
 * every rendition's `presentationTimeOffset` (ISO/IEC 23009-1 5.3.9.6), in
 * its own timescale: it plays from the Period's start, and the renditions
 * keep their offsets from one another, as HLS players keep them. Video
 * rungs form one AdaptationSet (aligned segments, so `segmentAlignment`), the
 * audio rendition another: DASH-IF IOP and dash.js refuse muxed audio+video.
 */
export const DASH_TYPE = 'application/dash+xml'
export const MPD = 'manifest.mpd'

export function mpd(rs: readonly Rendition[]): string {
  const video = videoRungs(rs)
  const audio = rs.filter(r => r.type === 'audio')
  const startSec = Math.min(...rs.map(r => r.segments.start / r.timescale))
  // to the last rendition's end, from the Period's start (the earliest first segment)
  const duration = Math.max(...rs.map(r => r.segments.start / r.timescale - startSec + durationSeconds(r)))
  const minBuffer = Math.max(...rs.flatMap(r => r.segments.durations.map(d => d / r.timescale)))
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:full:2011" type="static" mediaPresentationDuration="${isoDuration(duration)}" minBufferTime="${isoDuration(Math.ceil(minBuffer))}">`,
    '  <Period id="0" start="PT0S">',
  ]
  if (video.length > 0) {
    const maxW = Math.max(...video.map(v => v.width ?? 0))
    const maxH = Math.max(...video.map(v => v.height ?? 0))
    out.push(`    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="${maxW}" maxHeight="${maxH}">`)
    for (const v of video) {
      const fr = v.frameRate !== undefined ? ` frameRate="${frameRate(v.frameRate)}"` : ''
      out.push(`      <Representation id="${v.id}" bandwidth="${v.bandwidth}" codecs="${v.codecs}" width="${v.width}" height="${v.height}"${fr}>`)
      out.push(...representationBody(v, startSec))
      out.push('      </Representation>')
    }
    out.push('    </AdaptationSet>')
  }
  for (const [i, a] of audio.entries()) {
    out.push(`    <AdaptationSet id="${i + 1}" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1" lang="und">`)
    const rate = a.sampleRate !== undefined ? ` audioSamplingRate="${a.sampleRate}"` : ''
    out.push(`      <Representation id="${a.id}" bandwidth="${a.bandwidth}" codecs="${a.codecs}"${rate}>`)
    if (a.channels !== undefined)
      out.push(`        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="${a.channels}"/>`)
    out.push(...representationBody(a, startSec))
    out.push('      </Representation>', '    </AdaptationSet>')
  }
  out.push('  </Period>', '</MPD>')
  return out.join('\n') + '\n'
}

/** `startSec`: the earliest first-segment decode time of the ladder, in seconds (0 for a file that starts at 0) */
function representationBody(r: Rendition, startSec: number): string[] {
  const at = segmentOffsets(r)
  // the ladder's earliest first segment plays at the Period's start, each rendition's own start kept relative to it
  const pto = Math.round(startSec * r.timescale)
  const offset = pto > 0 ? ` presentationTimeOffset="${pto}"` : ''
  const out = [`        <BaseURL>${fileName(r)}</BaseURL>`, `        <SegmentList timescale="${r.timescale}"${offset}>`,
    `          <Initialization range="0-${r.init - 1}"/>`, '          <SegmentTimeline>']
  // runs of equal durations as one S with a repeat count
  const d = r.segments.durations
  for (let i = 0; i < d.length;) {
    let j = i
    while (j + 1 < d.length && d[j + 1] === d[i]) j++
    const t = i === 0 ? ` t="${r.segments.start}"` : ''
    out.push(`            <S${t} d="${d[i]}"${j > i ? ` r="${j - i}"` : ''}/>`)
    i = j + 1
  }
  out.push('          </SegmentTimeline>')
  for (let i = 0; i < d.length; i++) out.push(`          <SegmentURL mediaRange="${at[i]}-${at[i + 1]! - 1}"/>`)
  out.push('        </SegmentList>')
  return out
}

/** xs:duration with millisecond precision: PT1M3.250S. */
export function isoDuration(seconds: number): string {
  const ms = Math.round(seconds * 1000)
  const h = Math.floor(ms / 3_600_000)
  const m = Math.floor((ms % 3_600_000) / 60_000)
  const s = (ms % 60_000) / 1000
  return `PT${h ? `${h}H` : ''}${m ? `${m}M` : ''}${s || (!h && !m) ? `${s}S` : ''}`
}

/** 25 → "25", 29.97 → "30000/1001": the frame rates cameras and encoders actually use, as ratios. */
function frameRate(fps: number): string {
  if (Number.isInteger(fps)) return String(fps)
  for (const base of [24, 30, 48, 60, 120]) if (Math.abs(fps - (base * 1000) / 1001) < 0.01) return `${base * 1000}/1001`
  return String(Math.round(fps * 1000) / 1000)
}
