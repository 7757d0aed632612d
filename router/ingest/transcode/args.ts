import { join } from 'node:path'
import { rateString, type LadderPlan, type RungPlan } from './ladder.js'

/**
 * ffmpeg command lines for a plan. A job is one ffmpeg process and the
 * renditions it writes; the strategy decides how renditions are grouped:
 *
 * - split: one job for everything. The source is decoded once, converted to
 *   the output frame rate and 4:2:0 once, then `split` feeds one scaler and
 *   one x264 per rung, and the audio is encoded alongside.
 * - parallel: one job per rung (each decoding the source), all at once, and
 *   one for the audio.
 * - sequential: the same jobs, one after another.
 *
 * Every video output: libx264 at the plan's preset, VBV-capped (maxrate
 * 1.1 × the rung's rate, bufsize 2 ×), closed GOPs of `gop` frames with
 * keyframes forced at every multiple of segmentSeconds and scene-cut
 * keyframes off, so each rung has keyframes at the same times; fragmented
 * MP4 with a fragment per GOP (`frag_keyframe`), `empty_moov` (the init
 * segment is ftyp + moov, nothing else), `default_base_moof` (fragments
 * address their data relative to themselves, as CMAF requires) and no
 * trailing mfra. Audio: AAC-LC stereo 48 kHz, a fragment per segment's
 * length (`frag_duration`). Metadata and chapters are dropped: a chapter
 * track would make a second track in the file.
 */
export type Strategy = 'split' | 'parallel' | 'sequential'

export interface Job {
  /** rendition ids this process writes, each to `<dir>/<id>.mp4.part` */
  outputs: string[]
  args: string[]
}

const MOVFLAGS = '+empty_moov+default_base_moof+skip_trailer'

export function partPath(dir: string, id: string): string {
  return join(dir, `${id}.mp4.part`)
}

export function jobs(plan: LadderPlan, source: string, dir: string, strategy: Strategy, todo: ReadonlySet<string>): Job[] {
  const rungs = plan.rungs.filter(r => todo.has(r.id))
  const audio = plan.audio && todo.has(plan.audio.id) ? plan.audio : undefined
  if (strategy === 'split') {
    if (rungs.length === 0 && !audio) return []
    return [job(plan, source, dir, rungs, audio !== undefined)]
  }
  const out = rungs.map(r => job(plan, source, dir, [r], false))
  if (audio) out.push(job(plan, source, dir, [], true))
  return out
}

function job(plan: LadderPlan, source: string, dir: string, rungs: RungPlan[], withAudio: boolean): Job {
  const args = ['-hide_banner', '-nostdin', '-v', 'error', '-nostats', '-progress', 'pipe:1', '-y', '-i', source]
  const outputs: string[] = []
  if (rungs.length > 0) {
    const head = `[0:${plan.video.index}]fps=${rateString(plan.video.frameRate)},format=yuv420p`
    const scale = (r: RungPlan) => `scale=${r.width}:${r.height},setsar=1`
    const graph = rungs.length === 1 ? `${head},${scale(rungs[0]!)}[o0]`
      : `${head},split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join('')};` + rungs.map((r, i) => `[s${i}]${scale(r)}[o${i}]`).join(';')
    args.push('-filter_complex', graph)
    rungs.forEach((r, i) => {
      args.push('-map', `[o${i}]`, ...videoOutput(plan, r), partPath(dir, r.id))
      outputs.push(r.id)
    })
  }
  if (withAudio && plan.audio) {
    const a = plan.audio
    args.push('-map', `0:${a.index}`, '-c:a', 'aac', '-b:a', `${a.kbps}k`, '-ac', '2', '-ar', '48000',
      '-frag_duration', String(plan.segmentSeconds * 1_000_000), '-movflags', MOVFLAGS, ...common(), partPath(dir, a.id))
    outputs.push(a.id)
  }
  return { outputs, args }
}

function videoOutput(plan: LadderPlan, r: RungPlan): string[] {
  const S = plan.segmentSeconds
  return [
    '-c:v', 'libx264', '-preset', plan.preset, '-profile:v', r.profile,
    '-b:v', `${r.kbps}k`, '-maxrate', `${Math.round(r.kbps * 1.1)}k`, '-bufsize', `${r.kbps * 2}k`,
    '-g', String(plan.video.gop), '-keyint_min', String(plan.video.gop), '-sc_threshold', '0', '-flags', '+cgop',
    '-force_key_frames', `expr:gte(t,n_forced*${S})`,
    '-movflags', `+frag_keyframe${MOVFLAGS}`, ...common(),
  ]
}

function common(): string[] {
  return ['-map_metadata', '-1', '-map_chapters', '-1', '-f', 'mp4']
}
