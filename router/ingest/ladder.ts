import { z } from 'zod'
import { BadRequestError, PayloadTooLargeError } from '../../lib/errors.js'
import { parseManifest, type Manifest } from '../../lib/manifest.js'
import { checkLadder, renditionSchema, type Rendition } from '../../lib/media/rendition.js'
import { HLS_TYPE } from '../../lib/media/hls.js'
import { ladderVersion, sha256Hex, versionFromDigest } from '../cluster/keys.js'
import type { TitleMeta } from './meta.js'

/**
 * The body of an adaptive publish (`PUT /v1/content/{id}` with
 * `Content-Type: application/vnd.reelcdn.adaptive+json`, docs/abr.md
 * "Ingest"): `{ "renditions": [ …records… ] }`, checked before anything is
 * asked of the shards, every mistake named by rendition id:
 *   - each record against the rendition schema (lib/media/rendition.ts);
 *   - its storage fields against what a rendition upload of it answers: the
 *     version its SHA-256 gives at this cluster's chunk size, and one chunk
 *     digest and one block-list digest per chunk of its size;
 *   - the records together as a ladder (checkLadder: unique ids, one video
 *     rung at least, one audio rendition at most, aligned segments).
 * Whether the chunks are really stored is publish.ts's next step.
 *
 * The manifest holds the records in id order; its version names the ladder
 * (router/cluster/keys.ts ladderVersion). Its own file is empty.
 */
export const ADAPTIVE_TYPE = 'application/vnd.reelcdn.adaptive+json'
export const MAX_RENDITIONS = 16

/** Whether a PUT's Content-Type announces an adaptive publish (parameters and case aside). */
export function isAdaptivePublish(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0]!.trim().toLowerCase() === ADAPTIVE_TYPE
}

const bodySchema = z.object({ renditions: z.array(z.unknown()) }).strict()

export function parseLadder(body: unknown, contentId: string, chunkSize: number): Rendition[] {
  const shape = bodySchema.safeParse(body)
  if (!shape.success) {
    const why = shape.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new BadRequestError(`invalid adaptive publish body (expected {"renditions": [...]}): ${why}`, 'CDN_ERR_BAD_LADDER')
  }
  const raw = shape.data.renditions
  if (raw.length === 0 || raw.length > MAX_RENDITIONS)
    throw new BadRequestError(`an adaptive title has 1 to ${MAX_RENDITIONS} renditions, got ${raw.length}`, 'CDN_ERR_BAD_LADDER')
  const rs = raw.map((r, i) => {
    const name = renditionName(r, i)
    const res = renditionSchema.safeParse(r)
    if (!res.success) {
      const why = res.error.issues.map(x => `${x.path.join('.') || '(record)'}: ${x.message}`).join('; ')
      throw new BadRequestError(`${name} of ${contentId}: ${why}`, 'CDN_ERR_BAD_RENDITION')
    }
    return storedAs(res.data, name, contentId, chunkSize)
  })
  const why = checkLadder(rs)
  if (why) throw new BadRequestError(`the renditions of ${contentId} are not one ladder: ${why}`, 'CDN_ERR_BAD_LADDER')
  return [...rs].sort((a, b) => (a.id < b.id ? -1 : 1))
}

/** The record's storage fields are what an upload of its file answered (PUT /v1/content/{id}/renditions/{rid}). */
function storedAs(r: Rendition, name: string, contentId: string, chunkSize: number): Rendition {
  const fix = `upload its file with PUT /v1/content/${contentId}/renditions/${r.id} and take version, size, sha256, chunks and blocks from the answer`
  const version = versionFromDigest(r.sha256, chunkSize)
  if (r.version !== version)
    throw new BadRequestError(`${name} of ${contentId}: version ${r.version} is not the one its sha256 gives at chunk size ${chunkSize} (${version}): ${fix}`, 'CDN_ERR_BAD_RENDITION')
  const n = Math.ceil(r.size / chunkSize)
  if (r.chunks.length !== n)
    throw new BadRequestError(`${name} of ${contentId}: ${r.chunks.length} chunk digests for ${r.size} bytes in ${chunkSize}-byte chunks, expected ${n}: ${fix}`, 'CDN_ERR_BAD_RENDITION')
  return r
}

function renditionName(r: unknown, i: number): string {
  const id = typeof r === 'object' && r !== null ? (r as { id?: unknown }).id : undefined
  return typeof id === 'string' && id.length <= 40 ? `rendition ${JSON.stringify(id)} (renditions.${i})` : `renditions.${i}`
}

/** The manifest an adaptive title is published with. */
export function adaptiveManifest(contentId: string, renditions: Rendition[], meta: TitleMeta, chunkSize: number, maxBytes: number): Manifest {
  // what Reelcdn-Meta or the request's Content-Type said is not what is served: the title is played through its HLS master
  const m = parseManifest({
    contentId, version: ladderVersion(renditions), size: 0, chunkSize, sha256: sha256Hex(''), chunks: [], blocks: [],
    ...meta, contentType: HLS_TYPE, createdAt: Date.now(), renditions,
  })
  const bytes = Buffer.byteLength(JSON.stringify(m))
  if (bytes > maxBytes)
    throw new PayloadTooLargeError(`the manifest of ${contentId} would be ${bytes} bytes, more than the shards take (origin.maxManifestBytes, ${maxBytes}): fewer renditions, or a larger cluster.chunkSize`)
  return m
}
