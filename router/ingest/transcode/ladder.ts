import type { Config } from '../../../lib/config/config.js'
import { BadRequestError } from '../../../lib/errors.js'
import type { Rational, SourceInfo } from './probe.js'

/**
 * The plan of a transcode: which rungs of a configured ladder this source
 * gets, at which picture size, and the settings every rung shares (frame
 * rate, GOP, segment length). A pure function of the source's probe and the
 * config, so it can be tested without ffmpeg and hashed into the work
 * directory's key (work-dir.ts).
 *
 * Rungs. A rung's `height` is the picture's short side (a portrait source's
 * v720 is 720 wide). No rung is above the source: a rung up to 10 % above it
 * is made at the source's own size rounded down to even (853x479 → v480 at
 * 852x478, not dropped for one line), higher ones are left out; a source
 * below every rung gets the lowest rung at its own size. The long side
 * follows the source's display aspect ratio (sample aspect ratio and
 * rotation applied) — snapped to a common one (16:9, 4:3…) when within 1 %,
 * so 854x480 and 853x479 sources give the usual 640x360 and 426x240 —
 * rounded to even, and every rung has square pixels.
 *
 * Time. Every rung has the source's frame rate (divided by the smallest
 * integer that brings it to `maxFrameRate` or below), a GOP of
 * ceil(fps × segmentSeconds) frames and keyframes forced at every multiple
 * of segmentSeconds: the same frames in every rung, so the same keyframe
 * times, so segment boundaries align (checked on the result, not assumed).
 */
export interface RungPlan {
  id: string
  width: number
  height: number
  kbps: number
  profile: 'high' | 'main' | 'baseline'
}

export interface AudioPlan {
  id: string
  kbps: number
  /** the source's audio stream index */
  index: number
}

export interface LadderPlan {
  ladder: string
  video: { index: number; frameRate: Rational; gop: number }
  rungs: RungPlan[]
  audio?: AudioPlan
  segmentSeconds: number
  preset: string
}

export type IngestSettings = Config['ingest']

/** Common frame rates a measured one snaps to when it is within 0.5 % (variable-rate phone video reads as 29.83 fps). */
const STANDARD: Rational[] = [[24000, 1001], [24, 1], [25, 1], [30000, 1001], [30, 1], [48, 1], [50, 1], [60000, 1001], [60, 1]]
  .map(([num, den]) => ({ num: num!, den: den! }))
const CLOSE = 0.005
/** long side over short side of common pictures */
const ASPECTS = [16 / 9, 4 / 3, 3 / 2, 1, 1.85, 2, 2.39, 21 / 9]
const ROOM = 1.1

export function planLadder(src: SourceInfo, name: string, s: IngestSettings): LadderPlan {
  const ladder = s.ladders[name]
  if (!ladder) throw new BadRequestError(`no ladder named ${name} in ingest.ladders (there are: ${Object.keys(s.ladders).join(', ')})`, 'CDN_ERR_BAD_LADDER')
  const { displayWidth: dw, displayHeight: dh } = src.video
  const portrait = dh > dw
  const short = Math.min(dw, dh)
  const long = short * snapAspect(Math.max(dw, dh) / short)
  const sourceShort = Math.max(2, Math.floor(short / 2) * 2)
  const rungs: RungPlan[] = []
  const sorted = [...ladder].sort((a, b) => b.height - a.height)
  for (const r of sorted) {
    let h = r.height
    if (h > short) {
      if (h > short * ROOM) continue
      h = sourceShort
    }
    if (rungs.some(x => Math.min(x.width, x.height) === h)) continue
    const l = even(h * long / short)
    rungs.push({ id: r.id, kbps: r.kbps, profile: r.profile ?? 'high', ...(portrait ? { width: h, height: l } : { width: l, height: h }) })
  }
  if (rungs.length === 0) {
    const low = sorted.at(-1)!
    const l = even(sourceShort * long / short)
    rungs.push({ id: low.id, kbps: low.kbps, profile: low.profile ?? 'high', ...(portrait ? { width: sourceShort, height: l } : { width: l, height: sourceShort }) })
  }
  const frameRate = capRate(snapRate(src.video.frameRate), s.maxFrameRate)
  const fps = frameRate.num / frameRate.den
  return {
    ladder: name,
    video: { index: src.video.index, frameRate, gop: Math.ceil(fps * s.segmentSeconds - 1e-9) },
    rungs,
    ...(src.audio ? { audio: { id: `a${s.audioKbps}`, kbps: s.audioKbps, index: src.audio.index } } : {}),
    segmentSeconds: s.segmentSeconds,
    preset: s.preset,
  }
}

function snapAspect(a: number): number {
  return ASPECTS.find(x => Math.abs(x - a) <= a * 0.01) ?? a
}

function even(x: number): number {
  return Math.max(2, Math.round(x / 2) * 2)
}

export function snapRate(r: Rational): Rational {
  const fps = r.num / r.den
  const near = STANDARD.find(x => Math.abs(x.num / x.den - fps) <= fps * CLOSE)
  if (near) return near
  // an odd measured rate: whole frames per second, so GOPs and the timescale stay simple
  if (r.den > 1001 && !Number.isInteger(fps * 1000)) return { num: Math.max(1, Math.round(fps)), den: 1 }
  return reduce(r)
}

/** Divided by the smallest integer that brings it to `max` or below: 120 → 60, 100 → 50, 59.94 stays. */
export function capRate(r: Rational, max: number): Rational {
  const k = Math.ceil(r.num / r.den / max - 1e-9)
  if (k <= 1) return r
  return reduce({ num: r.num, den: r.den * k })
}

function reduce(r: Rational): Rational {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))
  const g = gcd(r.num, r.den)
  return { num: r.num / g, den: r.den / g }
}

export function rateString(r: Rational): string {
  return r.den === 1 ? String(r.num) : `${r.num}/${r.den}`
}
