import { timingSafeEqual, createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { ConfigError, UnauthorizedError } from '../errors.js'
import { readSecretFile } from './secret-file.js'
import { memoized } from '../memo.js'

/**
 * Bearer tokens. Secrets come from a file or the environment, never from a
 * flag (flags show in `ps`) and never into a log line; a secret file that its
 * group or others may read or write is refused (lib/secret-file.ts). Comparison hashes both
 * sides first so it is constant-time whatever the lengths.
 */
export function loadSecret(file: string, envVar: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env[envVar]
  if (fromEnv) return fromEnv
  if (!file) return undefined
  try {
    const s = readSecretFile(file).trim()
    if (!s) throw new Error('file is empty')
    return s
  } catch (err) {
    throw new ConfigError(`cannot read the secret for ${envVar} from ${file}: ${(err as Error).message}`)
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** the configured secrets' digests: a handful per process, each hashed once, not on every request (a reload's new ones replace them) */
const secretDigest = memoized(64, digest)

/** Whether the token a client presented (`given`) is the configured `secret`, in constant time whatever the two lengths. */
export function tokensEqual(given: string, secret: string): boolean {
  return digestMatches(digest(given), secret)
}

/** A presented token's digest against a configured secret's, in constant time. */
function digestMatches(given: Buffer, secret: string): boolean {
  return timingSafeEqual(given, secretDigest(secret))
}

/**
 * Throws 401 unless the request carries `Authorization: Bearer <token>`. No token configured: closed,
 * with `disabled` as the message (say what to set), so forgetting a secret never opens a route.
 */
export function requireBearer(req: IncomingMessage, token: string | undefined, disabled: string): void {
  if (token === undefined) throw new UnauthorizedError(disabled)
  const h = req.headers.authorization
  if (!h || !h.startsWith('Bearer ') || !tokensEqual(h.slice(7).trim(), token)) throw new UnauthorizedError()
}

/**
 * Reads whose credential is optional (a shard's reads, like the router's without a read token): the
 * token when one is configured, open otherwise. Never for a route that writes or deletes.
 */
export function requireBearerIfSet(req: IncomingMessage, token: string | undefined): void {
  if (token !== undefined) requireBearer(req, token, '')
}

/** Admin routes: closed when no token is configured, so forgetting the secret never opens them. */
export function requireAdmin(req: IncomingMessage, token: string | undefined, where: string): void {
  requireBearer(req, token, `the admin API is disabled: set ${where}`)
}

/**
 * Whether the request carries one of `tokens` as its Bearer (each compared in constant time, all of
 * them every time, so the answer's timing does not say which one nearly matched).
 */
export function bearerMatchesAny(req: IncomingMessage, tokens: readonly (string | undefined)[]): boolean {
  const h = req.headers.authorization
  if (h === undefined || !h.startsWith('Bearer ')) return false
  const given = digest(h.slice(7).trim())
  let ok = false
  for (const t of tokens) if (t !== undefined && digestMatches(given, t)) ok = true
  return ok
}

/** Throws 401 unless the request carries one of `tokens` (see bearerMatchesAny). */
export function requireAnyBearer(req: IncomingMessage, tokens: (string | undefined)[]): void {
  if (!bearerMatchesAny(req, tokens)) throw new UnauthorizedError()
}
