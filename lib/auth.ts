import { timingSafeEqual, createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { ConfigError, UnauthorizedError } from './errors.js'

/**
 * Bearer tokens. Secrets come from a file or the environment, never from a
 * flag (flags show in `ps`) and never into a log line. Comparison hashes both
 * sides first so it is constant-time whatever the lengths.
 */
export function loadSecret(file: string, envVar: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env[envVar]
  if (fromEnv) return fromEnv
  if (!file) return undefined
  try {
    const s = readFileSync(file, 'utf8').trim()
    if (!s) throw new Error('file is empty')
    return s
  } catch (err) {
    throw new ConfigError(`cannot read the secret for ${envVar} from ${file}: ${(err as Error).message}`)
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

export function tokensEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

/** Throws 401 unless the request carries `Authorization: Bearer <token>`. No token configured: open. */
export function requireBearer(req: IncomingMessage, token: string | undefined): void {
  if (token === undefined) return
  const h = req.headers.authorization
  if (!h || !h.startsWith('Bearer ') || !tokensEqual(h.slice(7).trim(), token)) throw new UnauthorizedError()
}
