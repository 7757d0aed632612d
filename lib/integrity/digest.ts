import { BadRequestError } from '../errors.js'

/**
 * SHA-256 digests on the wire use RFC 9530 fields: `Content-Digest` on a PUT
 * (the body's digest) and `Repr-Digest` on responses (the whole
 * representation's, also on a 206). The value is `sha-256=:<base64>:`;
 * internally we keep lowercase hex.
 */
export function digestHeader(hex: string): string {
  return `sha-256=:${Buffer.from(hex, 'hex').toString('base64')}:`
}

const FIELD = /(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/]{43}=):/

/** Parses a Content-Digest or Repr-Digest field into hex; undefined if it has no sha-256 member. */
export function digestFromHeader(v: string | string[] | undefined): string | undefined {
  if (typeof v !== 'string') return undefined
  const m = FIELD.exec(v)
  return m ? Buffer.from(m[1]!, 'base64').toString('hex') : undefined
}

export function parseContentDigest(v: string | string[] | undefined): string {
  const hex = digestFromHeader(v)
  if (!hex) throw new BadRequestError('a chunk PUT needs a Content-Digest header with a sha-256 member (RFC 9530): sha-256=:<base64>:', 'CDN_ERR_NO_DIGEST')
  return hex
}
