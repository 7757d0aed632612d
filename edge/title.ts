import { digestHeader } from '../lib/digest.js'
import { chunkLength, type Manifest } from '../lib/manifest.js'
import type { Representation } from '../lib/representation.js'

/**
 * A title as the edge serves it: its manifest, the cache identity of each
 * chunk, and the representation headers. Built once per metadata fetch, so a
 * request allocates none of it.
 */
export interface ChunkRef {
  /** `contentId/index/sha256`: the digest makes a new version of a title a new key, so stale bytes cannot be served */
  key: string
  contentId: string
  index: number
  sha256: string
  size: number
  /** the SHA-256 of the chunk's block list (a CRC32C per 64 KiB block), when the manifest has one: fills then verify block by block */
  blocks?: string | undefined
}

export interface Title {
  manifest: Manifest
  /** built on first use: a title's chunks that nobody reads cost nothing */
  refs: (ChunkRef | undefined)[]
  rep: Representation
}

export const IMMUTABLE = 'public, max-age=31536000, immutable'

export function chunkKey(contentId: string, index: number, sha256: string): string {
  return `${contentId}/${index}/${sha256}`
}

/** Chunk `index` of a title (which must exist), built once. */
export function chunkRef(title: Title, index: number): ChunkRef {
  let ref = title.refs[index]
  if (ref === undefined) {
    const m = title.manifest
    const sha256 = m.chunks[index]!
    ref = { key: chunkKey(m.contentId, index, sha256), contentId: m.contentId, index, sha256, size: chunkLength(m, index), blocks: m.blocks?.[index] }
    title.refs[index] = ref
  }
  return ref
}

export function buildTitle(manifest: Manifest): Title {
  return {
    manifest,
    refs: new Array<ChunkRef | undefined>(manifest.chunks.length),
    rep: {
      size: manifest.size,
      etag: `"${manifest.sha256}"`,
      lastModified: manifest.createdAt,
      contentType: manifest.contentType,
      cacheControl: IMMUTABLE,
      extra: { 'repr-digest': digestHeader(manifest.sha256) },
      reused: true,
    },
  }
}
