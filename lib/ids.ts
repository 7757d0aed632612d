import { InvalidIdError } from './errors.js'

/**
 * Identifiers arrive in URL paths, so they are checked on the raw (still
 * percent-encoded) path segment: `%2e%2e`, `%2f` and `%00` contain `%`, which the
 * rules do not allow, and are refused before anything is decoded. A valid id
 * never needs decoding, so the segment is the id.
 *
 * Two names, one alphabet:
 *  - a title's **contentId**, what players, the router, the edge and every tool
 *    take (parseContentId, the only rule for it anywhere);
 *  - a **shard key**, what a shard stores chunks under: the router's storage id
 *    `<contentId>.<version>` (16 hex digits of version), so up to 128
 *    characters (parseShardKey). A contentId is therefore at most
 *    128 - 1 - 16 = 111 characters and may not end in a dot (the storage id
 *    would contain "..").
 */
export const SHARD_KEY_MAX = 128
export const VERSION_HEX = 16
export const CONTENT_ID_MAX = SHARD_KEY_MAX - 1 - VERSION_HEX

export const CONTENT_ID_RULE = `a contentId is 1-${CONTENT_ID_MAX} characters of [A-Za-z0-9._-], starting with a letter or digit, without ".." and not ending in "."`
export const SHARD_KEY_RULE = `a shard key is 1-${SHARD_KEY_MAX} characters of [A-Za-z0-9._-], starting with a letter or digit, without ".."`
const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** What a shard stores chunks and manifests under (a storage id, or a contentId for a manifest). */
export function isShardKey(s: string): boolean {
  return KEY.test(s) && !s.includes('..')
}

export function parseShardKey(s: string): string {
  if (!isShardKey(s)) throw new InvalidIdError('shard key', SHARD_KEY_RULE)
  return s
}

/** A title's id: the one rule every service and tool applies. */
export function isContentId(s: string): boolean {
  return s.length <= CONTENT_ID_MAX && isShardKey(s) && !s.endsWith('.')
}

export function parseContentId(s: string): string {
  if (!isContentId(s)) throw new InvalidIdError('contentId', CONTENT_ID_RULE)
  return s
}

export const INDEX_RULE = 'a chunk index is a non-negative integer without leading zeros, below 2^32'
const INDEX = /^(0|[1-9][0-9]{0,9})$/

export function parseChunkIndex(s: string): number {
  if (!INDEX.test(s)) throw new InvalidIdError('chunk index', INDEX_RULE)
  const n = Number(s)
  if (n >= 2 ** 32) throw new InvalidIdError('chunk index', INDEX_RULE)
  return n
}

const SHA256_HEX = /^[0-9a-f]{64}$/

export function isSha256Hex(s: string | undefined): s is string {
  return typeof s === 'string' && SHA256_HEX.test(s)
}

/** A chunk's name in logs and errors: `movie-1/3`. */
export function chunkName(contentId: string, index: number): string {
  return `${contentId}/${index}`
}
