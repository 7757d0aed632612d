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
}

export interface Title {
  manifest: Manifest
  chunks: ChunkRef[]
  rep: Representation
}

export const IMMUTABLE = 'public, max-age=31536000, immutable'

export function chunkKey(contentId: string, index: number, sha256: string): string {
  return `${contentId}/${index}/${sha256}`
}

export function buildTitle(manifest: Manifest): Title {
  const chunks = manifest.chunks.map((sha256, index): ChunkRef => ({
    key: chunkKey(manifest.contentId, index, sha256), contentId: manifest.contentId, index, sha256, size: chunkLength(manifest, index),
  }))
  return {
    manifest,
    chunks,
    rep: {
      size: manifest.size,
      etag: `"${manifest.sha256}"`,
      lastModified: manifest.createdAt,
      contentType: manifest.contentType,
      cacheControl: IMMUTABLE,
      extra: { 'repr-digest': digestHeader(manifest.sha256) },
    },
  }
}
