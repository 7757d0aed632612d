import { BlockList, isIPv4 } from 'node:net'
import { LRUCache } from 'lru-cache'
import { parseCidr, TokenError, verifyToken, type KeyRing, type TokenClaims } from '../../lib/security/tokens.js'

/**
 * `--require-token`: every player request carries a play token the router
 * signed (lib/security/tokens.ts). A token is verified in full (HMAC, title, expiry,
 * network) the first time it is seen; afterwards its claims come from a
 * bounded cache keyed by the token string, and only the cheap checks run (title,
 * expiry, network), so the many range requests of one session cost one HMAC.
 * Only tokens whose signature verified are cached, so a tampered token never
 * hits the cache: it differs from every cached string.
 *
 * Without `--require-token`, an edge that holds the keys still verifies the
 * token of a request whose bytes demand counts (`demandSession` below): a
 * token that fails is not refused, it just does not name a session. A token
 * that fails is not cached, so each such request pays its check again (an
 * HMAC at most, as under `--require-token`).
 *
 * Key rotation: the ring holds every key still valid; a token signed with a
 * key that has left the ring fails ("unknown key id") once its cache entry is
 * gone, which happens when the edge restarts with the new ring, or at a
 * config reload that changes the keys (`forget`).
 */
interface Verified {
  claims: TokenClaims
  net: BlockList | undefined
}

export class PlayAuth {
  private readonly cache = new LRUCache<string, Verified>({ max: 50_000 })

  constructor(private readonly ring: KeyRing) {}

  /** The ring's keys changed (a reload): every token is verified in full again. */
  forget(): void {
    this.cache.clear()
  }

  /** Throws TokenError (403) with the reason; returns the verified claims. */
  check(token: string | undefined, contentId: string, clientIp: string, nowMs: number): TokenClaims {
    if (token === undefined || token === '') throw new TokenError('missing token')
    const now = nowMs / 1000
    const v = this.cache.get(token)
    if (v === undefined) {
      const claims = verifyToken(this.ring, token, { contentId, clientIp, now })
      let net: BlockList | undefined
      if (claims.net !== undefined) {
        const c = parseCidr(claims.net)
        net = new BlockList()
        net.addSubnet(c.address, c.prefix, c.type)
      }
      this.cache.set(token, { claims, net })
      return claims
    }
    const c = v.claims
    if (c.cid !== contentId) throw new TokenError('token is for another title')
    if (c.exp <= now) {
      this.cache.delete(token)
      throw new TokenError('token expired')
    }
    if (v.net !== undefined) {
      const ip = clientIp.startsWith('::ffff:') && isIPv4(clientIp.slice(7)) ? clientIp.slice(7) : clientIp
      if (!v.net.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6')) throw new TokenError(`client address is outside the token's network ${c.net}`)
    }
    return c
  }

  /** Whether `token` is one the router signed for this title and client, now (`check` without the throw). */
  verifies(token: string, contentId: string, clientIp: string, nowMs: number): boolean {
    try {
      this.check(token, contentId, clientIp, nowMs)
      return true
    } catch (err) {
      if (err instanceof TokenError) return false
      throw err
    }
  }
}

/**
 * The session a request's demand counts under (edge/prefill/demand.ts: a play
 * is a session's first request): its play token with tokens required (the one
 * `check` passed), or without them only one that verifies against the keys the
 * edge holds (`tokens`, when it has them); else its client address and title.
 * An unverified token is any string a client chose: counted, one client could
 * make up plays, which feed trending, steering's hot titles and prefill, and a
 * session key per string.
 */
export function demandSession(token: string | undefined, required: boolean, tokens: PlayAuth | undefined, contentId: string,
  clientIp: string, nowMs: number): string {
  const verified = token !== undefined && (required || tokens?.verifies(token, contentId, clientIp, nowMs) === true)
  return verified ? token : `${clientIp} ${contentId}`
}
