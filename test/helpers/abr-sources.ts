import { join } from 'node:path'
import { ffmpeg } from './ffmpeg.js'

/**
 * Short generated sources for the ingest-side tests of adaptive titles
 * (issue 15): test pattern and a tone, a few seconds, small pictures, and
 * the config those tests transcode with (ultrafast, 2 s segments, a ladder
 * of small rungs, the work directory in the test's own directory), so each
 * test file stays within seconds on two cores.
 */
export interface SourceSpec {
  seconds?: number
  size?: string
  rate?: string
  audio?: boolean
  /** extra output options, e.g. ['-vf', 'setsar=4/3'] */
  extra?: string[]
  codec?: string[]
  /** lavfi video source (testsrc2 by default; testsrc draws odd sizes, which testsrc2 rounds to even) */
  pattern?: string
}

export async function makeSource(bin: string, dir: string, name: string, s: SourceSpec = {}): Promise<string> {
  const file = join(dir, name)
  const secs = s.seconds ?? 6
  await ffmpeg(bin, ['-f', 'lavfi', '-i', `${s.pattern ?? 'testsrc2'}=duration=${secs}:size=${s.size ?? '320x180'}:rate=${s.rate ?? '25'}`,
    ...(s.audio === false ? [] : ['-f', 'lavfi', '-i', `sine=frequency=440:duration=${secs}`]),
    ...(s.codec ?? ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p']),
    ...(s.audio === false ? [] : ['-c:a', 'aac']), ...(s.extra ?? []), '-y', file])
  return file
}

/** 853x479, 4:4:4 (x264 takes odd sizes only outside 4:2:0): an odd source that must become even 4:2:0 rungs */
export const ODD: SourceSpec = { size: '853x479', pattern: 'testsrc', codec: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv444p'] }

/** The rungs tests transcode into: up to 180 lines. */
export const TEST_LADDER = [
  { id: 'v180', height: 180, kbps: 300 },
  { id: 'v144', height: 144, kbps: 200 },
  { id: 'v90', height: 90, kbps: 100 },
]

export function testIngestOverrides(workDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'ingest.ladders': { t: TEST_LADDER, default: TEST_LADDER },
    'ingest.preset': 'ultrafast',
    'ingest.segmentSeconds': 2,
    'ingest.workDir': workDir,
    ...extra,
  }
}
