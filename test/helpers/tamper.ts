/**
 * A token signature with one character changed, for tests that a tampered
 * token is refused. The middle character, never the last: a base64url
 * HMAC-SHA256 (43 characters, 258 bits for 256) ends in a character whose
 * 2 low bits decoding drops, so replacing the last two with "AA" gave the
 * same signature about once in 1,000 runs (router-tokens failed so on a
 * random key).
 */
export function tamperedSignature(sig: string): string {
  const mid = Math.floor(sig.length / 2)
  return `${sig.slice(0, mid)}${sig[mid] === 'A' ? 'B' : 'A'}${sig.slice(mid + 1)}`
}
