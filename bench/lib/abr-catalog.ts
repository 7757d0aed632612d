import { createHash } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { digestHeader } from '../../lib/integrity/digest.js'
import { indexFmp4File } from '../../lib/media/fmp4.js'
import { ingestLadder, type LadderFile } from '../../test/helpers/abr.js'
import { ladderNoise, ladderSource, LADDER_FPS, makeLadder } from '../../test/helpers/abr-ladder.js'
import { ensureFfmpeg, ffmpeg } from '../../test/helpers/ffmpeg.js'

/**
 * One catalog in two forms, for the abr-hit row (bench/rows/abr-hit.ts): K
 * titles, each made from one generated source (test pattern with noise of
 * its own seed, so no two titles share bytes, and a tone) both as an
 * adaptive ladder and as one progressive MP4 at about the top rung's rate.
 *
 * The ladder is test/helpers/abr-ladder.ts's makeLadder (ffmpeg ultrafast,
 * 10 fps, noise so each rung keeps its bitrate, 2 s closed GOPs aligned
 * across rungs, AAC audio as a rendition of its own); the single file is the
 * same picture and noise at the top rung's height and bitrate with the same
 * audio muxed in, `+faststart`, as a title before issue 15 was. Titles are
 * ranked: title 0 is the most popular, and lengths run from `minS` to `maxS`
 * in rank order, so popularity and size are not confounded by chance.
 *
 * Ingest goes through the router's own API: a ladder with test/helpers/abr.ts's
 * ingestLadder (one PUT per rendition, then the publish), a single file with one
 * PUT and its Content-Digest, as `reelcdn ingest` does.
 */
export interface Rung { id: string; height: number; kbps: number }

export interface CatalogOptions {
  titles: number
  minS: number
  maxS: number
  rungs: Rung[]
  audioKbps: number
}

export interface CatalogTitle {
  rank: number
  durationS: number
  /** the renditions, video rungs first, audio last */
  ladder: LadderFile[]
  single: { path: string; bytes: Buffer }
}

export const abrId = (rank: number) => `abr-hit-${rank}`
export const singleId = (rank: number) => `file-hit-${rank}`

/** Title lengths from minS to maxS in rank order, whole segments of 2 s. */
export function titleLengths(o: Pick<CatalogOptions, 'titles' | 'minS' | 'maxS'>): number[] {
  return Array.from({ length: o.titles }, (_, i) => {
    const s = o.titles === 1 ? o.minS : o.minS + (o.maxS - o.minS) * i / (o.titles - 1)
    return Math.max(2, 2 * Math.round(s / 2))
  })
}

async function ladderFile(dir: string, id: string): Promise<LadderFile> {
  const path = join(dir, `${id}.mp4`)
  const bytes = await readFile(path)
  return { id, path, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), index: await indexFmp4File(path) }
}

export async function makeCatalog(dir: string, o: CatalogOptions, log: (s: string) => void): Promise<CatalogTitle[]> {
  const bin = await ensureFfmpeg()
  const top = o.rungs.reduce((a, r) => (r.kbps > a.kbps ? r : a))
  const out: CatalogTitle[] = []
  for (const [rank, durationS] of titleLengths(o).entries()) {
    const d = join(dir, `title-${rank}`)
    await mkdir(d, { recursive: true })
    const seed = rank + 1
    await makeLadder(d, { durationS, rungs: o.rungs, audioKbps: o.audioKbps, segmentS: 2, seed })
    const ladder = await Promise.all([...o.rungs.map(r => r.id), `a${o.audioKbps}`].map(id => ladderFile(d, id)))
    const single = join(d, 'single.mp4')
    await ffmpeg(bin, ['-f', 'lavfi', '-i', ladderSource(durationS), '-f', 'lavfi', '-i', `sine=duration=${durationS}`,
      '-vf', `scale=-2:${top.height},${ladderNoise(seed)}`, '-c:v', 'libx264', '-preset', 'ultrafast',
      '-b:v', `${top.kbps}k`, '-maxrate', `${top.kbps}k`, '-bufsize', `${top.kbps}k`, '-g', String(LADDER_FPS * 2), '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', `${o.audioKbps}k`, '-ac', '2', '-movflags', '+faststart', '-f', 'mp4', single], 180_000)
    const t = { rank, durationS, ladder, single: { path: single, bytes: await readFile(single) } }
    out.push(t)
    log(`title ${rank}: ${durationS} s; ladder ${ladder.map(f => `${f.id} ${(f.bytes.length / 1e6).toFixed(1)} MB`).join(', ')}; ` +
      `single file ${(t.single.bytes.length / 1e6).toFixed(1)} MB (${kbps(t.single.bytes.length, durationS)} kb/s)`)
  }
  return out
}

export const kbps = (bytes: number, seconds: number) => Math.round(bytes * 8 / seconds / 1000)
export const ladderBytes = (t: CatalogTitle) => t.ladder.reduce((a, f) => a + f.bytes.length, 0)

/** PUT /v1/content/{id} with the file and its Content-Digest; resolves once the title is published. */
async function ingestFile(routerUrl: string, token: string, id: string, bytes: Buffer): Promise<void> {
  const res = await request(`${routerUrl}/v1/content/${id}`, {
    method: 'PUT', body: bytes,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'video/mp4', 'content-digest': digestHeader(createHash('sha256').update(bytes).digest('hex')),
      'reelcdn-meta': JSON.stringify({ title: `bench ${id}` }) },
    headersTimeout: 0, bodyTimeout: 0,
  })
  const text = await res.body.text()
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`ingest of ${id}: ${res.statusCode} ${text}`)
}

/** Both forms of every title into the cluster behind `routerUrl`. */
export async function ingestCatalog(routerUrl: string, token: string, titles: CatalogTitle[]): Promise<void> {
  for (const t of titles) {
    await ingestLadder(routerUrl, abrId(t.rank), t.ladder, token, { title: `bench ${abrId(t.rank)}` })
    await ingestFile(routerUrl, token, singleId(t.rank), t.single.bytes)
  }
}
