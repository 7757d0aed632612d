import { createHmac, timingSafeEqual } from 'node:crypto'
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { readSecretFile } from './secret-file.js'
import { CdnError, ConfigError } from '../errors.js'

/**
 * Signed playback tokens. A token grants one viewer one title until an expiry,
 * optionally only from one client network. It is HMAC-SHA256 over its own
 * payload, under a key named by `kid`, so keys rotate with no downtime: sign
 * with the new key while verifiers accept both (a `KeyRing` holds every key
 * still valid), then retire the old one once its tokens have expired.
 *
 * Wire form: base64url(JSON payload) "." base64url(HMAC). One token serves every
 * range request of a playback session: it names the title, not a byte range.
 */
export interface TokenClaims {
  /** key id */
  kid: string
  /** contentId */
  cid: string
  /** expiry, epoch seconds */
  exp: number
  /** client network as a CIDR, or absent for anywhere */
  net?: string
  /** viewer id, for sessions and history */
  vid?: string
  /** `viewer` on a viewer credential (signViewer); absent on play tokens */
  typ?: 'viewer'
}

export class TokenError extends CdnError {
  override name = 'TokenError'
  constructor(reason: string) {
    super(`token rejected: ${reason}`, { code: 'CDN_ERR_TOKEN', statusCode: 403, source: 'client' })
  }
}

/** Keys by id; the first is the one new tokens are signed with. */
export class KeyRing {
  private keys: Map<string, Buffer>
  /** the key id that signs; changes only with `adopt` */
  current: string

  constructor(keys: { kid: string; secret: string }[]) {
    if (keys.length === 0) throw new Error('a key ring needs at least one key')
    for (const k of keys) {
      if (!/^[A-Za-z0-9._-]{1,32}$/.test(k.kid)) throw new Error(`key id ${JSON.stringify(k.kid)} must be 1-32 characters of [A-Za-z0-9._-]`)
      if (k.secret.length < 16) throw new Error(`key ${k.kid} is too short: use at least 16 characters (32 random bytes is best)`)
    }
    this.keys = new Map(keys.map(k => [k.kid, Buffer.from(k.secret)]))
    this.current = keys[0]!.kid
  }

  /** Parses `kid1:secret1,kid2:secret2` (the form REELCDN_TOKEN_KEYS takes). */
  static parse(spec: string): KeyRing {
    return new KeyRing(spec.split(',').map(s => s.trim()).filter(Boolean).map(pair => {
      const i = pair.indexOf(':')
      if (i <= 0) throw new Error('token keys take the form kid:secret[,kid:secret]')
      return { kid: pair.slice(0, i), secret: pair.slice(i + 1) }
    }))
  }

  /**
   * Takes `next`'s keys in place (a config reload: lib/reload.ts): everything
   * holding this ring signs and verifies with them from now on.
   */
  adopt(next: KeyRing): void {
    this.keys = next.keys
    this.current = next.current
  }

  /** Whether `other` holds the same keys, the same one signing. */
  same(other: KeyRing): boolean {
    if (other.current !== this.current || other.keys.size !== this.keys.size) return false
    for (const [kid, k] of this.keys) if (!other.keys.get(kid)?.equals(k)) return false
    return true
  }

  key(kid: string): Buffer | undefined {
    return this.keys.get(kid)
  }
}

function mac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest()
}

function sign(ring: KeyRing, claims: object): string {
  const payload = Buffer.from(JSON.stringify({ kid: ring.current, ...claims })).toString('base64url')
  return `${payload}.${mac(ring.key(ring.current)!, payload).toString('base64url')}`
}

export function signToken(ring: KeyRing, claims: Omit<TokenClaims, 'kid' | 'typ'>): string {
  if (claims.net !== undefined) parseCidr(claims.net)
  return sign(ring, claims)
}

export interface VerifyInput {
  contentId: string
  clientIp: string
  /** epoch seconds */
  now: number
}

/** The signed claims of a token, whatever it grants: throws TokenError (403) unless the signature verifies under a ring key. */
function openToken(ring: KeyRing, token: string | undefined, what: string): TokenClaims {
  if (!token) throw new TokenError(`missing ${what}`)
  const dot = token.indexOf('.')
  if (dot <= 0 || dot !== token.lastIndexOf('.')) throw new TokenError(`malformed ${what}`)
  const payload = token.slice(0, dot)
  let claims: TokenClaims
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims
  } catch {
    throw new TokenError(`malformed ${what}`)
  }
  if (typeof claims !== 'object' || claims === null || typeof claims.kid !== 'string') throw new TokenError(`malformed ${what}`)
  const key = ring.key(claims.kid)
  if (!key) throw new TokenError(`unknown key id ${JSON.stringify(claims.kid)}`)
  const given = Buffer.from(token.slice(dot + 1), 'base64url')
  const want = mac(key, payload)
  if (given.length !== want.length || !timingSafeEqual(given, want)) throw new TokenError('bad signature')
  return claims
}

/** Checks a token for a request; throws TokenError (403) with the reason, or returns its claims. */
export function verifyToken(ring: KeyRing, token: string | undefined, input: VerifyInput): TokenClaims {
  const claims = openToken(ring, token, 'token')
  if (claims.typ !== undefined) throw new TokenError('a viewer credential is not a play token')
  if (claims.cid !== input.contentId) throw new TokenError('token is for another title')
  if (typeof claims.exp !== 'number' || claims.exp <= input.now) throw new TokenError('token expired')
  if (claims.net !== undefined && !inCidr(input.clientIp, claims.net)) throw new TokenError(`client address is outside the token's network ${claims.net}`)
  return claims
}

/**
 * A viewer credential: proof that its holder is viewer `vid`, which /v1/play
 * needs before it issues tokens for a named viewer (those tokens read and
 * overwrite that viewer's positions and history). Same wire form and keys as
 * play tokens, with claims `{kid, typ: "viewer", vid, exp}`: /v1/play hands one
 * out with every answer (for the id it made up, or renewed for the one given),
 * and an operator's account service that holds the token keys can mint them
 * for its own user ids (`reelcdn token viewer ID`, or the same HMAC-SHA256 in
 * any language). It grants no title: verifyToken refuses it.
 */
export function signViewer(ring: KeyRing, vid: string, exp: number): string {
  return sign(ring, { typ: 'viewer', vid, exp })
}

/** The viewer id a credential proves; throws TokenError (403) with the reason. `now` in epoch seconds. */
export function verifyViewer(ring: KeyRing, credential: string | undefined, now: number): string {
  if (credential !== undefined && credential !== '' && !credential.includes('.'))
    throw new TokenError('a bare viewer id is not accepted: pass a viewer credential (the `viewer` of an earlier /v1/play answer, or `reelcdn token viewer ID`)')
  const claims = openToken(ring, credential, 'viewer credential')
  if (claims.typ !== 'viewer' || typeof claims.vid !== 'string' || claims.vid === '') throw new TokenError('not a viewer credential (a play token cannot name a viewer)')
  if (typeof claims.exp !== 'number' || claims.exp <= now) throw new TokenError('viewer credential expired')
  return claims.vid
}

/** `10.0.0.0/8` or `2001:db8::/32` → a checker. Throws on anything else. */
export function parseCidr(cidr: string): { address: string; prefix: number; type: 'ipv4' | 'ipv6' } {
  const slash = cidr.indexOf('/')
  const address = slash < 0 ? cidr : cidr.slice(0, slash)
  const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
  const prefix = slash < 0 ? (type === 'ipv4' ? 32 : 128) : Number(cidr.slice(slash + 1))
  if (!type || !Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128) || !/^[0-9]*$/.test(cidr.slice(slash + 1)))
    throw new Error(`expected a CIDR such as 192.0.2.0/24 or 2001:db8::/32, got ${JSON.stringify(cidr)}`)
  return { address, prefix, type }
}

/** Whether `ip` (v4, v6 or v4-mapped v6) lies in `cidr`. */
export function inCidr(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr)
  const list = new BlockList()
  list.addSubnet(c.address, c.prefix, c.type)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  const addr = mapped ? mapped[1]! : ip
  if (isIPv4(addr)) return list.check(addr, 'ipv4')
  if (isIPv6(addr)) return list.check(addr, 'ipv6')
  return false
}

/**
 * The play token of a request: `?token=` in the query (what /v1/play puts in
 * its URLs, so `<video src>` works) or `Authorization: Bearer`. Scans the query
 * string without parsing all of it: this runs on every player request.
 */
export function requestToken(query: string, authorization: string | undefined): string | undefined {
  let i = query.startsWith('token=') ? 0 : query.indexOf('&token=') + 1
  if (i > 0 || query.startsWith('token=')) {
    i += 6
    const end = query.indexOf('&', i)
    const raw = end < 0 ? query.slice(i) : query.slice(i, end)
    // base64url and '.' need no decoding; anything else is decoded (and will fail verification if mangled)
    return /^[A-Za-z0-9_.-]*$/.test(raw) ? raw : safeDecode(raw)
  }
  if (authorization !== undefined && authorization.startsWith('Bearer ')) return authorization.slice(7).trim()
  return undefined
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Play token keys: REELCDN_TOKEN_KEYS (`kid:secret,kid2:secret2`, the first signs) or a file holding the same. */
export function loadKeyRing(file: string, env: NodeJS.ProcessEnv): KeyRing | undefined {
  let spec = env.REELCDN_TOKEN_KEYS
  if (!spec && file) {
    try {
      spec = readSecretFile(file).trim()
    } catch (err) {
      throw new ConfigError(`cannot read the token keys for REELCDN_TOKEN_KEYS from ${file}: ${(err as Error).message}`)
    }
  }
  if (!spec) return undefined
  try {
    return KeyRing.parse(spec)
  } catch (err) {
    throw new ConfigError(`invalid token keys (REELCDN_TOKEN_KEYS or the tokenKeysFile setting): ${(err as Error).message}`)
  }

}
