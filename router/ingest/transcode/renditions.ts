import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { indexFmp4File } from '../../../lib/media/fmp4.js'
import { MediaError } from '../../../lib/media/boxes.js'
import { checkLadder, type Rendition } from '../../../lib/media/rendition.js'
import { RenditionInputError } from './errors.js'

/**
 * Rendition files on this machine, ready to upload: each indexed with
 * lib/media/fmp4.ts (init, segments, codecs, bandwidths, picture or sound)
 * and hashed (its SHA-256 is the upload's Content-Digest), and the set
 * checked as a ladder (`checkLadder`: one track each, segment boundaries
 * of the video rungs at the same times) before a byte is uploaded — whether
 * we transcoded the files or they came pre-encoded. What the router adds on
 * upload (version, chunks, blocks) completes each record (ingest-adaptive.ts).
 */
export type MediaFields = Omit<Rendition, 'version' | 'size' | 'sha256' | 'chunks' | 'blocks'>

export interface LocalRendition {
  id: string
  path: string
  size: number
  sha256: string
  media: MediaFields
}

type Fail = (message: string, cause?: unknown) => Error

const input: Fail = (m, cause) => new RenditionInputError(m, cause ? { cause } : undefined)

export async function indexRendition(id: string, path: string, fail: Fail = input): Promise<LocalRendition> {
  let x
  try {
    x = await indexFmp4File(path)
  } catch (err) {
    if (err instanceof MediaError) throw fail(`rendition ${id}: ${err.message}`, err)
    throw err
  }
  const t = x.track
  const media: MediaFields = {
    id, type: t.type, contentType: t.type === 'video' ? 'video/mp4' : 'audio/mp4', codecs: t.codecs,
    bandwidth: x.bandwidth, averageBandwidth: x.averageBandwidth,
    ...(t.type === 'video' ? { width: t.width!, height: t.height!, ...(x.frameRate !== undefined ? { frameRate: x.frameRate } : {}) }
      : { sampleRate: t.sampleRate!, channels: t.channels! }),
    timescale: t.timescale, init: x.init, segments: x.segments,
  }
  return { id, path, size: x.size, sha256: await sha256File(path), media }
}

/** Indexes every file, then checks they make one ladder; `fail` makes the error (whose fault it is differs by caller). */
export async function indexLadder(files: { id: string; path: string }[], fail: Fail = input): Promise<LocalRendition[]> {
  const out: LocalRendition[] = []
  for (const f of files) out.push(await indexRendition(f.id, f.path, fail))
  const why = ladderProblem(out)
  if (why) throw fail(why)
  return out
}

/** checkLadder reads only id, type, timescale and segments, which the media fields hold. */
export function ladderProblem(rs: readonly LocalRendition[]): string | undefined {
  return checkLadder(rs.map(r => r.media) as unknown as Rendition[])
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const b of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(b as Buffer)
  return h.digest('hex')
}
