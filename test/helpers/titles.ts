import { createCipheriv, createHash } from 'node:crypto'
import type { Manifest } from '../../lib/manifest.js'

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
}

export function manifestFor(contentId: string, bytes: Buffer, o: TitleOptions): Manifest {
  const chunks: string[] = []
  for (let off = 0; off < bytes.length; off += o.chunkSize)
    chunks.push(createHash('sha256').update(bytes.subarray(off, off + o.chunkSize)).digest('hex'))
  return {
    contentId,
    version: o.version ?? 'v1',
    size: bytes.length,
    chunkSize: o.chunkSize,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    chunks,
    contentType: o.contentType ?? 'video/mp4',
    title: o.title ?? contentId,
    categories: ['test'],
    rights: { regions: ['*'], availableFrom: null, availableUntil: null },
    createdAt: Date.UTC(2024, 0, 2, 3, 4, 5),
  }
}
