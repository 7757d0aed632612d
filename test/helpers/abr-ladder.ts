import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { indexFmp4File, type Fmp4Index } from '../../lib/media/fmp4.js'
import { masterPlaylist, mediaPlaylist, playlistName } from '../../lib/media/hls.js'
import { checkLadder, type Rendition } from '../../lib/media/rendition.js'
import { ensureFfmpeg, ffmpeg } from './ffmpeg.js'

/**
 * A small real ladder for the ABR client's tests: each video rung and the
 * audio made with ffmpeg as fragmented MP4 (closed GOPs of `segmentS`, so the
 * rungs align), indexed with lib/media/fmp4.ts, and the playlists
 * lib/media/hls.ts writes (what the router and the edge answer) beside them
 * in `dir`. Noise on the picture keeps each rung at its bitrate (a test
 * pattern alone compresses far below it). 10 frames a second and ultrafast:
 * a 30 s ladder of three rungs takes about two seconds of CPU.
 */
export interface LadderOptions {
  durationS: number
  /** video rungs: ids like `v180`, heights, target bitrates */
  rungs: { id: string; height: number; kbps: number }[]
  /** an audio rendition `a64` at this bitrate; none when absent */
  audioKbps?: number
  segmentS?: number
  /** the noise's seed: ladders of the same length and rungs with different seeds have different bytes (default ffmpeg's) */
  seed?: number
}

const H = (c: string) => c.repeat(64)

/** A rendition record from a file's index, with placeholder storage fields (version, digests): for playlists made off disk. */
export function record(id: string, x: Fmp4Index): Rendition {
  const t = x.track
  return {
    id, type: t.type, version: '0123456789abcdef', size: x.size, sha256: H('a'), chunks: [H('b')], blocks: [H('c')],
    contentType: t.type === 'video' ? 'video/mp4' : 'audio/mp4', codecs: t.codecs, bandwidth: x.bandwidth, averageBandwidth: x.averageBandwidth,
    ...(t.type === 'video' ? { width: t.width, height: t.height, frameRate: x.frameRate } : { sampleRate: t.sampleRate, channels: t.channels }),
    timescale: t.timescale, init: x.init, segments: x.segments,
  }
}

/** The noise filter makeLadder draws on the picture: a single-file form of the same source uses it too (bench/lib/abr-catalog.ts). */
export const ladderNoise = (seed?: number) => `noise=alls=30:allf=t${seed === undefined ? '' : `:all_seed=${seed}`}`

/** The frame rate makeLadder encodes at. */
export const LADDER_FPS = 10

/** makeLadder's picture before scaling and noise: a lavfi source. */
export const ladderSource = (durationS: number) => `testsrc2=duration=${durationS}:size=640x360:rate=${LADDER_FPS}`

export async function makeLadder(dir: string, o: LadderOptions): Promise<Rendition[]> {
  const bin = await ensureFfmpeg()
  const seg = o.segmentS ?? 2
  const fps = LADDER_FPS
  const frag = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']
  const out: Rendition[] = []
  for (const r of o.rungs) {
    await ffmpeg(bin, ['-f', 'lavfi', '-i', ladderSource(o.durationS),
      '-vf', `scale=-2:${r.height},${ladderNoise(o.seed)}`, '-c:v', 'libx264', '-preset', 'ultrafast',
      '-b:v', `${r.kbps}k`, '-maxrate', `${r.kbps}k`, '-bufsize', `${r.kbps}k`, '-g', String(fps * seg), '-keyint_min', String(fps * seg),
      '-sc_threshold', '0', '-pix_fmt', 'yuv420p', ...frag, join(dir, `${r.id}.mp4`)])
    out.push(record(r.id, await indexFmp4File(join(dir, `${r.id}.mp4`))))
  }
  if (o.audioKbps) {
    await ffmpeg(bin, ['-f', 'lavfi', '-i', `sine=duration=${o.durationS}`, '-c:a', 'aac', '-b:a', `${o.audioKbps}k`, '-ac', '2',
      '-frag_duration', String(seg * 1_000_000), ...frag, join(dir, `a${o.audioKbps}.mp4`)])
    out.push(record(`a${o.audioKbps}`, await indexFmp4File(join(dir, `a${o.audioKbps}.mp4`))))
  }
  const bad = checkLadder(out)
  if (bad) throw new Error(`the test ladder is not aligned: ${bad}`)
  await writeFile(join(dir, 'master.m3u8'), masterPlaylist(out))
  for (const r of out) await writeFile(join(dir, playlistName(r)), mediaPlaylist(r))
  return out
}
