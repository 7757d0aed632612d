import { z } from 'zod'

/**
 * A rendition of an adaptive title (issue 15, docs/abr.md): one CMAF file —
 * fragmented MP4, one track — stored like a title's file (chunks, digests,
 * block lists, replicas) under the storage id `<contentId>.<version>`, plus
 * what a player needs to pick it and what a playlist needs to address its
 * segments as byte ranges of that one file.
 *
 * Segments tile the file from `init` on: segment i is the `sizes[i]` bytes
 * after `init + Σ sizes[<i]`, and lasts `durations[i]` ticks of `timescale`.
 * Bytes after the last segment (a trailing `mfra`) belong to no segment.
 * Video rungs of one title have their segment boundaries at the same times
 * (closed GOPs, aligned keyframes), so a player can switch between any two
 * at any boundary; `checkLadder` refuses a ladder where they do not.
 */
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex SHA-256')

export const RENDITION_ID_RULE = 'a rendition id is 1-16 characters of [a-z0-9_-], starting with a letter or digit, and not "master"'
export const RENDITION_ID = /^[a-z0-9][a-z0-9_-]{0,15}$/

/** A rendition id: the rule, and not `master`, whose media playlist would be named like the master playlist (master.m3u8). */
export function isRenditionId(s: string): boolean {
  return RENDITION_ID.test(s) && s !== 'master'
}

export const renditionSchema = z.object({
  id: z.string().refine(isRenditionId, RENDITION_ID_RULE),
  type: z.enum(['video', 'audio']),
  /** 16 hex digits: the rendition file's storage version (from its SHA-256 and the chunk size, like a title's) */
  version: z.string().regex(/^[0-9a-f]{16}$/, '16 lowercase hex digits'),
  size: z.number().int().positive(),
  /** SHA-256 of the rendition file */
  sha256,
  chunks: z.array(sha256).min(1),
  /** per chunk, the SHA-256 of its block CRC list (as a title's `blocks`) */
  blocks: z.array(sha256).min(1),
  contentType: z.enum(['video/mp4', 'audio/mp4']),
  /** RFC 6381 codecs parameter: `avc1.64001f`, `mp4a.40.2` */
  codecs: z.string().regex(/^[A-Za-z0-9]{4}(\.[A-Za-z0-9]+)*$/, 'an RFC 6381 codec string').max(64),
  /** peak bits per second over any one segment (HLS BANDWIDTH, DASH @bandwidth) */
  bandwidth: z.number().int().positive(),
  /** bits per second over the whole file (HLS AVERAGE-BANDWIDTH) */
  averageBandwidth: z.number().int().positive(),
  width: z.number().int().positive().max(16384).optional(),
  height: z.number().int().positive().max(16384).optional(),
  frameRate: z.number().positive().max(1000).optional(),
  sampleRate: z.number().int().positive().max(768_000).optional(),
  channels: z.number().int().positive().max(64).optional(),
  /** ticks per second of the track's media timeline (mdhd) */
  timescale: z.number().int().positive(),
  /** bytes [0, init) are the initialization segment (ftyp, moov) */
  init: z.number().int().positive(),
  segments: z.object({
    /** the first segment's decode time (tfdt), in ticks */
    start: z.number().int().min(0),
    sizes: z.array(z.number().int().positive()).min(1),
    durations: z.array(z.number().int().positive()).min(1),
  }).strict(),
}).strict().superRefine((r, ctx) => {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message })
  if (r.segments.sizes.length !== r.segments.durations.length)
    issue(['segments'], `${r.segments.sizes.length} segment sizes but ${r.segments.durations.length} durations`)
  const end = r.init + r.segments.sizes.reduce((a, b) => a + b, 0)
  if (end > r.size) issue(['segments', 'sizes'], `the segments end at byte ${end}, past the file's size ${r.size}`)
  if (r.blocks.length !== r.chunks.length) issue(['blocks'], `${r.blocks.length} block-list digests for ${r.chunks.length} chunks`)
  if (r.type === 'video' && (r.width === undefined || r.height === undefined)) issue(['width'], 'a video rendition needs width and height')
  if (r.type === 'video' && r.contentType !== 'video/mp4') issue(['contentType'], 'a video rendition is video/mp4')
  if (r.type === 'audio' && r.contentType !== 'audio/mp4') issue(['contentType'], 'an audio rendition is audio/mp4')
  if (r.averageBandwidth > r.bandwidth) issue(['averageBandwidth'], `averageBandwidth ${r.averageBandwidth} exceeds the peak bandwidth ${r.bandwidth}`)
})

export type Rendition = z.infer<typeof renditionSchema>

/** Byte offset of each segment's first byte, and one past the last segment's end (length sizes + 1). */
export function segmentOffsets(r: Pick<Rendition, 'init' | 'segments'>): number[] {
  const out = new Array<number>(r.segments.sizes.length + 1)
  let at = r.init
  out[0] = at
  for (let i = 0; i < r.segments.sizes.length; i++) {
    at += r.segments.sizes[i]!
    out[i + 1] = at
  }
  return out
}

/** Each segment's start time in seconds from the title's start, and the end of the last (length sizes + 1). */
export function segmentTimes(r: Pick<Rendition, 'timescale' | 'segments'>): number[] {
  const out = new Array<number>(r.segments.durations.length + 1)
  let t = 0
  out[0] = 0
  for (let i = 0; i < r.segments.durations.length; i++) {
    t += r.segments.durations[i]!
    out[i + 1] = t / r.timescale
  }
  return out
}

/** The rendition's duration in seconds (its segments'). */
export function durationSeconds(r: Pick<Rendition, 'timescale' | 'segments'>): number {
  return r.segments.durations.reduce((a, b) => a + b, 0) / r.timescale
}

/** Segment boundaries of two video rungs may differ by this much (one 90 kHz tick is 11 µs; timescales differ by rung). */
export const ALIGN_TOLERANCE_S = 0.001

/**
 * Why this set of renditions is not one playable ladder, or undefined: ids
 * unique, at least one video rung, at most one audio rendition, every video
 * rung with the same number of segments and the same boundaries (within
 * ALIGN_TOLERANCE_S), so a player can switch rung at any segment boundary.
 */
export function checkLadder(rs: readonly Rendition[]): string | undefined {
  const ids = new Set<string>()
  for (const r of rs) {
    if (ids.has(r.id)) return `rendition id ${r.id} appears twice`
    ids.add(r.id)
  }
  const video = rs.filter(r => r.type === 'video')
  if (video.length === 0) return 'an adaptive title needs at least one video rendition'
  if (rs.length - video.length > 1) return 'an adaptive title has at most one audio rendition'
  const ref = segmentTimes(video[0]!)
  for (const r of video.slice(1)) {
    const t = segmentTimes(r)
    if (t.length !== ref.length) return `video renditions ${video[0]!.id} and ${r.id} have ${ref.length - 1} and ${t.length - 1} segments: their keyframes are not aligned`
    for (let i = 0; i < t.length; i++) {
      if (Math.abs(t[i]! - ref[i]!) > ALIGN_TOLERANCE_S)
        return `video renditions ${video[0]!.id} and ${r.id} have segment ${i} at ${ref[i]!.toFixed(3)} s and ${t[i]!.toFixed(3)} s: their keyframes are not aligned`
    }
  }
  return undefined
}
