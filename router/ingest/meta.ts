import type { IncomingHttpHeaders } from 'node:http'
import { z } from 'zod'
import { BadRequestError } from '../../lib/errors.js'
import { rightsSchema, type Manifest } from '../../lib/manifest.js'

/**
 * A title's metadata on ingest comes in one request header, `Reelcdn-Meta`,
 * holding a JSON object (README: "Ingest"):
 *   {"title": "…", "categories": ["drama"], "contentType": "video/mp4",
 *    "rights": {"regions": ["FR", "BE"], "availableFrom": "2025-01-01T00:00:00Z", "availableUntil": null}}
 * Every member is optional. Header values are ASCII: write other characters
 * as JSON \u escapes (the CLI does). Dates are ISO 8601 strings or epoch
 * milliseconds. Without a contentType the request's Content-Type is used.
 */
export const META_HEADER = 'reelcdn-meta'
const MAX_META = 16 * 1024

const when = z.union([z.number().int(), z.string().min(1).max(64)]).nullable()
  .transform((v, ctx) => {
    if (v === null || typeof v === 'number') return v
    const t = Date.parse(v)
    if (Number.isNaN(t)) { ctx.addIssue({ code: 'custom', message: `not an ISO 8601 date: ${JSON.stringify(v)}` }); return z.NEVER }
    return t
  })

const metaSchema = z.object({
  title: z.string().max(1000).optional(),
  categories: z.array(z.string().min(1).max(100)).max(50).optional(),
  contentType: z.string().min(1).max(255).regex(/^[\x21-\x7e][\x20-\x7e]*$/, 'printable ASCII').optional(),
  rights: z.object({
    regions: rightsSchema.shape.regions.optional(),
    availableFrom: when.optional(),
    availableUntil: when.optional(),
  }).strict().optional(),
}).strict()

export type TitleMeta = Pick<Manifest, 'title' | 'categories' | 'contentType' | 'rights'>

export function parseMeta(headers: IncomingHttpHeaders, contentId: string): TitleMeta {
  const raw = headers[META_HEADER]
  let given: z.infer<typeof metaSchema> = {}
  if (raw !== undefined) {
    if (typeof raw !== 'string' || raw.length > MAX_META) throw new BadRequestError(`${META_HEADER} must be one JSON object of at most ${MAX_META} bytes`, 'CDN_ERR_BAD_META')
    let json: unknown
    try {
      json = JSON.parse(raw)
    } catch (err) {
      throw new BadRequestError(`${META_HEADER} is not valid JSON: ${(err as Error).message}`, 'CDN_ERR_BAD_META')
    }
    const res = metaSchema.safeParse(json)
    if (!res.success) {
      const why = res.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
      throw new BadRequestError(`invalid ${META_HEADER}: ${why}`, 'CDN_ERR_BAD_META')
    }
    given = res.data
  }
  const ct = headers['content-type']
  const rights = {
    regions: given.rights?.regions ?? ['*'],
    availableFrom: given.rights?.availableFrom ?? null,
    availableUntil: given.rights?.availableUntil ?? null,
  }
  if (rights.availableFrom !== null && rights.availableUntil !== null && rights.availableUntil <= rights.availableFrom)
    throw new BadRequestError(`invalid ${META_HEADER}: rights.availableUntil must be after rights.availableFrom`, 'CDN_ERR_BAD_META')
  return {
    title: given.title ?? contentId,
    categories: given.categories ?? [],
    contentType: given.contentType ?? (ct && /^[\x21-\x7e][\x20-\x7e]*$/.test(ct) ? ct : 'application/octet-stream'),
    rights,
  }
}
