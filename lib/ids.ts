import { InvalidIdError } from './errors.js'

/**
 * Identifiers arrive in URL paths, so they are checked on the raw (still
 * percent-encoded) path segment: `%2e%2e`, `%2f` and `%00` contain `%`, which the
 * rule does not allow, and are refused before anything is decoded. A valid id
 * never needs decoding, so the segment is the id.
 */
export const CONTENT_ID_RULE = 'a contentId is 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit, without ".."'
const CONTENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function isContentId(s: string): boolean {
  return CONTENT_ID.test(s) && !s.includes('..')
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
