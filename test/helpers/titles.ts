import { createCipheriv, createHash } from 'node:crypto'
import type { Manifest } from '../../lib/manifest.js'
import { blockCrcs, blockListDigest } from '../../lib/integrity/block-hasher.js'

/**
 * Test titles: deterministic bytes (AES-CTR keystream of a seed, fast and
 * incompressible) and the manifest the router would publish for them.
 */
export function titleBytes(size: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

export interface TitleOptions {
  chunkSize: number
  contentType?: string
  title?: string
  version?: string
  /** list each chunk's block-list digest (`blocks`), as the router's ingest does; off: a title ingested before block lists */
  blocks?: boolean
}

export function manifestFor(contentId: string, bytes: Buffer, o: TitleOptions): Manifest {
  const chunks: string[] = []
  const blocks: string[] = []
  for (let off = 0; off < bytes.length; off += o.chunkSize) {
    chunks.push(createHash('sha256').update(bytes.subarray(off, off + o.chunkSize)).digest('hex'))
    if (o.blocks) blocks.push(blockListDigest(blockCrcs(bytes.subarray(off, off + o.chunkSize))))
  }
  return {
    contentId,
    version: o.version ?? 'v1',
    size: bytes.length,
    chunkSize: o.chunkSize,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    chunks,
    ...(o.blocks ? { blocks } : {}),
    contentType: o.contentType ?? 'video/mp4',
    title: o.title ?? contentId,
    categories: ['test'],
    rights: { regions: ['*'], availableFrom: null, availableUntil: null },
    createdAt: Date.UTC(2024, 0, 2, 3, 4, 5),
  }
}
