import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'
import type { Manifest } from '../../lib/manifest.js'
import { indexFmp4Buffer, type Fmp4Index } from '../../lib/media/fmp4.js'
import { HLS_TYPE } from '../../lib/media/hls.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { ensureFfmpeg, ffmpeg } from './ffmpeg.js'

/**
 * A small real ladder for edge tests (issue 15): two H.264 rungs (640x360 at
 * ~600 kb/s, 320x180 at ~200 kb/s) and one AAC rendition, `seconds` long, with
 * 2 s closed GOPs aligned across rungs and a fragment per GOP: real CMAF files
 * players and ffmpeg read. Transcoded once per machine and kept under the OS
 * temp dir (written to a temporary name, then renamed: concurrent test files
 * share it), since every ABR test file needs the same one.
 *
 * `adaptiveManifest` is what the router publishes for it (docs/abr.md): the
 * title's own file empty, each rendition chunked at `chunkSize` with a SHA-256
 * and a block-list digest per chunk.
 */
export interface LadderFile {
  id: string
  bytes: Buffer
  index: Fmp4Index
}

const RUNGS = [{ id: 'v360', height: 360, rate: '600k' }, { id: 'v180', height: 180, rate: '200k' }]

export async function makeLadder(seconds = 8): Promise<LadderFile[]> {
  const bin = await ensureFfmpeg()
  const dir = join(tmpdir(), `reelcdn-test-ladder-v1-${seconds}s`)
  const done = join(dir, 'done')
  if (!(await stat(done).catch(() => undefined))) {
    const work = `${dir}.${randomBytes(6).toString('hex')}`
    await mkdir(work, { recursive: true })
    const frag = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']
    for (const r of RUNGS) {
      await ffmpeg(bin, ['-f', 'lavfi', '-i', `testsrc2=duration=${seconds}:size=640x360:rate=25`, '-vf', `scale=-2:${r.height}`,
        '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', r.rate, '-g', '50', '-keyint_min', '50', '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
        ...frag, join(work, `${r.id}.mp4`)])
    }
    await ffmpeg(bin, ['-f', 'lavfi', '-i', `sine=duration=${seconds}`, '-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-frag_duration', '2000000',
      ...frag, join(work, 'a64.mp4')])
    await writeFile(join(work, 'done'), 'ok')
    // a leftover without `done` (a run cut short) goes; a complete one another test file made first stays
    if (!(await stat(done).catch(() => undefined))) await rm(dir, { recursive: true, force: true })
    await rename(work, dir).catch(() => rm(work, { recursive: true, force: true }))
  }
  const out: LadderFile[] = []
  for (const id of [...RUNGS.map(r => r.id), 'a64']) {
    const bytes = await readFile(join(dir, `${id}.mp4`))
    out.push({ id, bytes, index: await indexFmp4Buffer(bytes) })
  }
  return out
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** The rendition record of a file, chunked at `chunkSize`. */
export function renditionRecord(f: LadderFile, chunkSize: number): Rendition {
  const x = f.index
  const t = x.track
  const chunks: string[] = []
  const blocks: string[] = []
  for (let off = 0; off < f.bytes.length; off += chunkSize) {
    const c = f.bytes.subarray(off, off + chunkSize)
    chunks.push(sha(c))
    blocks.push(blockListDigest(blockCrcs(c)))
  }
  const digest = sha(f.bytes)
  return {
    id: f.id, type: t.type, version: sha(Buffer.from(`${digest}/${chunkSize}`)).slice(0, 16), size: f.bytes.length, sha256: digest, chunks, blocks,
    contentType: t.type === 'video' ? 'video/mp4' : 'audio/mp4', codecs: t.codecs, bandwidth: x.bandwidth, averageBandwidth: x.averageBandwidth,
    ...(t.type === 'video' ? { width: t.width!, height: t.height!, ...(x.frameRate ? { frameRate: x.frameRate } : {}) } : { sampleRate: t.sampleRate!, channels: t.channels! }),
    timescale: t.timescale, init: x.init, segments: x.segments,
  }
}

/** The manifest the router would publish for the ladder under `contentId`. */
export function adaptiveManifest(contentId: string, files: readonly LadderFile[], chunkSize: number): Manifest {
  const renditions = files.map(f => renditionRecord(f, chunkSize))
  return {
    contentId,
    version: sha(Buffer.from(renditions.map(r => `${r.id}:${r.sha256}`).join(','))).slice(0, 16),
    size: 0,
    chunkSize,
    sha256: sha(Buffer.alloc(0)),
    chunks: [],
    contentType: HLS_TYPE,
    title: contentId,
    categories: ['test'],
    rights: { regions: ['*'], availableFrom: null, availableUntil: null },
    createdAt: Date.UTC(2024, 0, 2, 3, 4, 5),
    renditions,
  }
}

/** The files by rendition id, as FakeUpstream.addAdaptive takes them. */
export function ladderFiles(files: readonly LadderFile[]): Map<string, Buffer> {
  return new Map(files.map(f => [f.id, f.bytes]))
}
