import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { indexFmp4File, type Fmp4Index } from '../../lib/media/fmp4.js'
import type { Rendition } from '../../lib/media/rendition.js'
import { blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'
import { versionFromDigest } from '../../router/cluster/keys.js'
import { ensureFfmpeg, ffmpeg } from './ffmpeg.js'

/**
 * Adaptive titles for tests: a tiny real ladder made with ffmpeg (two video
 * rungs with keyframes every 2 s, so their segments align, and an audio
 * rendition), indexed with lib/media/fmp4.ts, and uploaded through the
 * router's own API: one PUT per rendition file, then the publish. A test
 * helper, not a client: `reelcdn ingest` is the client (router/ingest/).
 */
export const ADAPTIVE_TYPE = 'application/vnd.reelcdn.adaptive+json'

export interface LadderFile {
  id: string
  path: string
  bytes: Buffer
  sha256: string
  index: Fmp4Index
}

/** A video rung of a test ladder: its id, height and bitrate (constant, so its BANDWIDTH is what the test expects). */
export interface TestRung { id: string; height: number; kbps: number }

/**
 * Renditions v180 (320x180, 600 kb/s), v90 (160x90, 150 kb/s) and a64 (AAC
 * stereo), `seconds` long, in `dir`; `rungs` replaces the two video rungs
 * (the source is as tall as the tallest, 16:9); `misaligned` adds v90g3, a
 * 90p rung with keyframes every 3 s instead of 2 (a rung that is not of the
 * ladder).
 */
export async function makeLadder(dir: string, seconds = 6, o: { misaligned?: boolean; rungs?: TestRung[] } = {}): Promise<LadderFile[]> {
  const bin = await ensureFfmpeg()
  const frag = ['-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4']
  const rungs = o.rungs ?? [{ id: 'v180', height: 180, kbps: 600 }, { id: 'v90', height: 90, kbps: 150 }]
  const top = Math.max(...rungs.map(r => r.height))
  const size = `${Math.round(top * 16 / 9 / 2) * 2}x${top}`
  // near-constant bitrate (maxrate = bufsize = the target): a rung's peak is close to its nominal rate
  const video = (h: number, kbps: number, out: string, gop = 50) => ffmpeg(bin, ['-f', 'lavfi', '-i', `testsrc2=duration=${seconds}:size=${size}:rate=25`,
    '-vf', `scale=-2:${h}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', `${kbps}k`, ...(o.rungs ? ['-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`] : []),
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0', '-pix_fmt', 'yuv420p', ...frag, join(dir, out)])
  for (const r of rungs) await video(r.height, r.kbps, `${r.id}.mp4`)
  if (o.misaligned) await video(90, 150, 'v90g3.mp4', 75)
  await ffmpeg(bin, ['-f', 'lavfi', '-i', `sine=duration=${seconds}`, '-c:a', 'aac', '-b:a', '64k', '-ac', '2', '-frag_duration', '2000000', ...frag, join(dir, 'a64.mp4')])
  return Promise.all([...rungs.map(r => r.id), 'a64', ...(o.misaligned ? ['v90g3'] : [])].map(async id => {
    const path = join(dir, `${id}.mp4`)
    const bytes = await readFile(path)
    return { id, path, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), index: await indexFmp4File(path) }
  }))
}

/** What PUT /v1/content/{id}/renditions/{rid} answers. */
export interface Stored {
  version: string
  size: number
  sha256: string
  chunks: string[]
  blocks: string[]
}

/** What an upload of `bytes` would answer, computed here: for a record of a file the router never saw. */
export function storedLocally(bytes: Buffer, chunkSize: number): Stored {
  const chunks: string[] = []
  const blocks: string[] = []
  for (let off = 0; off < bytes.length; off += chunkSize) {
    const chunk = bytes.subarray(off, off + chunkSize)
    chunks.push(createHash('sha256').update(chunk).digest('hex'))
    blocks.push(blockListDigest(blockCrcs(chunk)))
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  return { version: versionFromDigest(sha256, chunkSize), size: bytes.length, sha256, chunks, blocks }
}

/** A rendition's record: what the file's index says, and where the upload stored it. */
export function recordOf(f: LadderFile, s: Stored): Rendition {
  const t = f.index.track
  return {
    id: f.id, type: t.type, version: s.version, size: s.size, sha256: s.sha256, chunks: s.chunks, blocks: s.blocks,
    contentType: t.type === 'video' ? 'video/mp4' : 'audio/mp4', codecs: t.codecs, bandwidth: f.index.bandwidth, averageBandwidth: f.index.averageBandwidth,
    ...(t.type === 'video' ? { width: t.width, height: t.height, ...(f.index.frameRate !== undefined ? { frameRate: f.index.frameRate } : {}) }
      : { sampleRate: t.sampleRate, channels: t.channels }),
    timescale: t.timescale, init: f.index.init, segments: f.index.segments,
  }
}

export interface PutOptions {
  /** the admin token; null sends none */
  token?: string | null
  /** the Content-Digest's hex; false sends none */
  digest?: string | false
}

async function answer(res: Awaited<ReturnType<typeof request>>) {
  const text = await res.body.text()
  return { status: res.statusCode, json: (text ? JSON.parse(text) : null) as Record<string, any>, headers: res.headers }
}

export async function putRendition(url: string, id: string, rid: string, bytes: Buffer, token: string, o: PutOptions = {}) {
  const headers: Record<string, string> = { 'content-type': 'video/mp4' }
  if (o.token !== null) headers.authorization = `Bearer ${o.token ?? token}`
  const digest = o.digest ?? createHash('sha256').update(bytes).digest('hex')
  if (digest !== false) headers['content-digest'] = digestHeader(digest)
  return answer(await request(`${url}/v1/content/${id}/renditions/${rid}`, { method: 'PUT', body: bytes, headers }))
}

export async function publish(url: string, id: string, body: unknown, token: string, o: { meta?: object; token?: string | null } = {}) {
  const headers: Record<string, string> = { 'content-type': ADAPTIVE_TYPE }
  if (o.token !== null) headers.authorization = `Bearer ${o.token ?? token}`
  if (o.meta) headers['reelcdn-meta'] = JSON.stringify(o.meta)
  return answer(await request(`${url}/v1/content/${id}`, { method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body), headers }))
}

/** Uploads every file, then publishes them as one ladder; throws unless each step succeeded. */
export async function ingestLadder(url: string, id: string, files: LadderFile[], token: string, meta?: object) {
  const records: Rendition[] = []
  for (const f of files) {
    const up = await putRendition(url, id, f.id, f.bytes, token)
    if (up.status !== 200) throw new Error(`rendition ${f.id} upload: ${up.status} ${JSON.stringify(up.json)}`)
    records.push(recordOf(f, up.json as Stored))
  }
  const pub = await publish(url, id, { renditions: records }, token, meta ? { meta } : {})
  if (pub.status !== 201 && pub.status !== 200) throw new Error(`publish: ${pub.status} ${JSON.stringify(pub.json)}`)
  return { records, publish: pub }
}

/** Each segment of a rendition as [start, end] (inclusive), the init segment first. */
export function segmentRanges(r: Pick<Rendition, 'init' | 'segments'>): [number, number][] {
  const out: [number, number][] = [[0, r.init - 1]]
  let at = r.init
  for (const n of r.segments.sizes) {
    out.push([at, at + n - 1])
    at += n
  }
  return out
}
