import { createHmac, timingSafeEqual } from 'node:crypto'
import { CdnError } from '../errors.js'

/**
 * Fill grants: what lets an edge read one chunk straight from one shard
 * (docs/fill-path.md). The router, which knows who owns a chunk, signs a
 * grant per (chunk, owner); the shard checks it on GET/HEAD of that chunk and
 * of its block list, and on nothing else.
 *
 * A grant is `g1.<claims>.<mac>`, both parts base64url. The claims are the
 * JSON array [scope, storage id, chunk index, shard id, expiry (epoch s),
 * edge id]; the mac is HMAC-SHA256 over `g1.<claims>` with the grant key.
 * The key is derived from the shard token the router and shards already
 * share (HMAC(shardToken, 'reelcdn fill grant v1')), so there is no new
 * secret to provision, and a grant never reveals the token it came from. No
 * shard token: no key, so the router issues none and shards accept none (the
 * edge falls back to the relay).
 *
 * What a shard checks, in order: the form (malformed), the mac (forged), the
 * scope (read), the chunk (the one asked for), the shard (its own
 * `origin.id`: a grant for shard A is refused by shard B), the expiry. Each
 * failure is a 403 whose code says whether to ask the router again
 * (CDN_ERR_GRANT_EXPIRED) or not (CDN_ERR_GRANT_INVALID), and whose `reason`
 * labels the shard's metric.
 */
export const GRANT_SCOPE = 'read'
const VERSION = 'g1'

export interface GrantClaims {
  /** the chunk's storage id (`<contentId>.<version>`) and index, as the shard stores it */
  sid: string
  index: number
  /** the shard id the grant is for */
  shard: string
  /** expiry, epoch seconds */
  exp: number
  /** the edge it was issued to: for the shard's logs */
  edge: string
}

export type GrantRefusal = 'malformed' | 'forged' | 'scope' | 'wrong_chunk' | 'wrong_shard' | 'no_shard_id' | 'expired'

export class GrantError extends CdnError {
  override name = 'GrantError'
  constructor(readonly reason: GrantRefusal, message: string) {
    super(message, { code: reason === 'expired' ? 'CDN_ERR_GRANT_EXPIRED' : 'CDN_ERR_GRANT_INVALID', statusCode: 403, source: 'client' })
  }
}

/** The grant key for a shard token: what router and shards sign and check grants with. */
export function fillGrantKey(shardToken: string): Buffer {
  return createHmac('sha256', shardToken).update('reelcdn fill grant v1').digest()
}

export function signGrant(key: Buffer, c: GrantClaims): string {
  const claims = Buffer.from(JSON.stringify([GRANT_SCOPE, c.sid, c.index, c.shard, c.exp, c.edge])).toString('base64url')
  return `${VERSION}.${claims}.${mac(key, claims)}`
}

export interface GrantWant {
  sid: string
  index: number
  /** this shard's id; '' when it has none (origin.id unset): every grant is refused */
  shard: string
  /** epoch seconds */
  now: number
}

/** The grant's claims when it is good for `want`; else a GrantError saying why. */
export function verifyGrant(key: Buffer, grant: string, want: GrantWant): GrantClaims {
  const parts = grant.split('.')
  if (parts.length !== 3 || parts[0] !== VERSION || !parts[1] || !parts[2]) throw new GrantError('malformed', 'malformed fill grant: expected g1.<claims>.<mac>')
  const got = Buffer.from(parts[2], 'base64url')
  const expect = Buffer.from(mac(key, parts[1]), 'base64url')
  if (got.length !== expect.length || !timingSafeEqual(got, expect)) throw new GrantError('forged', 'fill grant signature does not verify (not signed by this cluster\'s router)')
  let a: unknown
  try {
    a = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
  } catch {
    throw new GrantError('malformed', 'malformed fill grant: its claims are not JSON')
  }
  if (!Array.isArray(a) || a.length !== 6 || typeof a[1] !== 'string' || !Number.isInteger(a[2]) || typeof a[3] !== 'string' ||
    typeof a[4] !== 'number' || typeof a[5] !== 'string') throw new GrantError('malformed', 'malformed fill grant: unexpected claims')
  const c: GrantClaims = { sid: a[1], index: a[2], shard: a[3], exp: a[4], edge: a[5] }
  if (a[0] !== GRANT_SCOPE) throw new GrantError('scope', `fill grant of scope ${String(a[0])} does not allow reads`)
  if (c.sid !== want.sid || c.index !== want.index) throw new GrantError('wrong_chunk', `fill grant is for chunk ${c.sid}/${c.index}, not ${want.sid}/${want.index}`)
  if (want.shard === '') throw new GrantError('no_shard_id', 'this shard has no origin.id, so it cannot tell its own grants: set origin.id to its id in cluster.shards')
  if (c.shard !== want.shard) throw new GrantError('wrong_shard', `fill grant is for shard ${c.shard}, not ${want.shard}`)
  if (c.exp <= want.now) throw new GrantError('expired', `fill grant expired ${Math.ceil(want.now - c.exp)} s ago: ask the router for a new one`)
  return c
}

/** The grant of an `Authorization: Grant <grant>` header, or undefined. */
export function grantFromHeader(h: string | undefined): string | undefined {
  return h !== undefined && h.startsWith('Grant ') ? h.slice(6).trim() : undefined
}

function mac(key: Buffer, claims: string): string {
  return createHmac('sha256', key).update(`${VERSION}.${claims}`).digest('base64url')
}
