import { z } from 'zod'
import { BadRequestError } from './errors.js'
import { isContentId, CONTENT_ID_RULE } from './ids.js'
import { checkLadder, renditionSchema, type Rendition } from './media/rendition.js'

/**
 * A title's manifest: everything a reader needs besides the bytes. It is
 * written last on ingest, so its presence is what makes a title visible, and
 * its per-chunk digests are what every hop verifies against.
 */
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex SHA-256')

export const rightsSchema = z.object({
  /** ISO 3166-1 alpha-2 codes, or ['*'] for everywhere */
  regions: z.array(z.string().regex(/^([A-Z]{2}|\*)$/, 'an ISO 3166-1 alpha-2 code or *')).max(300),
  /** epoch milliseconds; null means unbounded */
  availableFrom: z.number().int().nullable(),
  availableUntil: z.number().int().nullable(),
}).strict()

export const manifestSchema = z.object({
  contentId: z.string().refine(isContentId, CONTENT_ID_RULE),
  /** the title's version: changes whenever the bytes do, so chunk keys never collide across versions */
  version: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  size: z.number().int().min(0),
  chunkSize: z.number().int().positive(),
  /** SHA-256 of the whole file */
  sha256,
  chunks: z.array(sha256),
  /**
   * Per chunk, the SHA-256 of its block list: the CRC32C of every 64 KiB block,
   * packed big-endian 4 bytes a block (what shards keep and serve at
   * /v1/chunks/{id}/{i}/crcs). Anchors block-by-block verification of partial
   * reads in the manifest; titles ingested before it existed lack it.
   */
  blocks: z.array(sha256).optional(),
  contentType: z.string().min(1).max(255),
  title: z.string().max(1000),
  categories: z.array(z.string().min(1).max(100)).max(50),
  rights: rightsSchema,
  createdAt: z.number().int(),
  /**
   * Present on an adaptive title (issue 15): its renditions, each a file of
   * its own (lib/media/rendition.ts). The title's own file is then empty
   * (size 0, no chunks) and its `version` names the ladder.
   */
  renditions: z.array(renditionSchema).min(1).max(16).optional(),
}).strict().superRefine((m, ctx) => {
  const want = m.size === 0 ? 0 : Math.ceil(m.size / m.chunkSize)
  if (m.chunks.length !== want)
    ctx.addIssue({ code: 'custom', path: ['chunks'], message: `expected ${want} chunk digests for size ${m.size} and chunkSize ${m.chunkSize}, got ${m.chunks.length}` })
  if (m.renditions === undefined) return
  if (m.size !== 0) ctx.addIssue({ code: 'custom', path: ['size'], message: 'an adaptive title\'s own file is empty: its bytes are its renditions\'' })
  m.renditions.forEach((r, i) => {
    const n = Math.ceil(r.size / m.chunkSize)
    if (r.chunks.length !== n)
      ctx.addIssue({ code: 'custom', path: ['renditions', i, 'chunks'], message: `expected ${n} chunk digests for size ${r.size} and chunkSize ${m.chunkSize}, got ${r.chunks.length}` })
  })
  const why = checkLadder(m.renditions)
  if (why) ctx.addIssue({ code: 'custom', path: ['renditions'], message: why })
})

export type Manifest = z.infer<typeof manifestSchema>

export function parseManifest(body: unknown): Manifest {
  const res = manifestSchema.safeParse(body)
  if (!res.success) {
    const why = res.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new BadRequestError(`invalid manifest: ${why}`, 'CDN_ERR_BAD_MANIFEST')
  }
  return res.data
}

/** A one-chunk title's manifest that passes the schema: what `warmManifestParser` parses. */
export const WARM_MANIFEST: Manifest = {
  contentId: 'warm-up', version: 'warm', size: 1, chunkSize: 1, sha256: '0'.repeat(64), chunks: ['0'.repeat(64)], blocks: ['0'.repeat(64)],
  contentType: 'video/mp4', title: '', categories: [], rights: { regions: ['*'], availableFrom: null, availableUntil: null }, createdAt: 0,
}

/**
 * Parses WARM_MANIFEST once: zod compiles a schema's parser on its first use,
 * and the first manifest an edge parsed took 7 ms of a cold miss's first
 * byte for that (0.3-0.8 ms after). The edge calls it before it says ready,
 * as it opens its first connections then.
 */
export function warmManifestParser(): void {
  parseManifest(structuredClone(WARM_MANIFEST))
}

/** Is this an adaptive title (renditions and playlists) rather than a single file? */
export function isAdaptive(m: Pick<Manifest, 'renditions'>): m is Manifest & { renditions: Rendition[] } {
  return m.renditions !== undefined
}

/** The rendition `id` of an adaptive title, if it has one. */
export function renditionOf(m: Pick<Manifest, 'renditions'>, id: string): Rendition | undefined {
  return m.renditions?.find(r => r.id === id)
}

/** Size in bytes of chunk `index` of a title. */
export function chunkLength(m: Pick<Manifest, 'size' | 'chunkSize'>, index: number): number {
  return Math.min(m.chunkSize, m.size - index * m.chunkSize)
}
