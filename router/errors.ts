import { CdnError, InsufficientStorageError, UpstreamError } from '../lib/errors.js'
import { ERROR_CODE_HEADER } from '../lib/http/http.js'

/**
 * Router errors. A shard's refusal keeps the shard's own code and status as
 * fields, so callers can branch on them; what the router's client sees is a
 * 502 (or the shard's 507: nothing on our side can fix a full disk).
 */
export class ShardRefusedError extends CdnError {
  override name = 'ShardRefusedError'
  constructor(readonly shard: string, readonly op: string, readonly upstreamStatus: number, readonly upstreamCode: string, message: string) {
    super(`shard ${shard} refused ${op}: ${upstreamStatus} ${upstreamCode}: ${message}`, {
      code: 'CDN_ERR_SHARD_REFUSED', statusCode: 502, source: 'upstream', retryable: upstreamStatus >= 500 })
  }
}

/**
 * A shard's refusal as the router's error. A 507 with a Retry-After is the shard's uploads in flight holding the
 * space above its reserve for the moment (origin/server.ts): the uploads' timing, retried and, if it lasts, answered
 * 507, but not a full disk for the operator's error log; one without is a full disk.
 */
export function shardRefusal(shard: string, op: string, status: number, body: string, headers: Record<string, string | string[] | undefined> = {}): CdnError {
  let code = 'CDN_ERR_UNKNOWN'
  let message = body.slice(0, 300)
  try {
    const e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error
    if (e?.code) code = e.code
    if (e?.message) message = e.message
  } catch { /* not JSON: keep the text */ }
  // a HEAD's refusal has no body: its code comes in a header (lib/http/http.ts)
  const inHeader = headers[ERROR_CODE_HEADER]
  if (code === 'CDN_ERR_UNKNOWN' && typeof inHeader === 'string' && /^CDN_ERR_[A-Z_]+$/.test(inHeader)) code = inHeader
  if (status === 507) {
    if (headers['retry-after'] !== undefined) return new InsufficientStorageError(`shard ${shard} has no room for the moment: ${message}`, undefined, 'client')
    return new InsufficientStorageError(`shard ${shard} is full: ${message}`)
  }
  return new ShardRefusedError(shard, op, status, code, message)
}

/** No owner, nor any other shard, could serve or store something. */
export class NoReplicaError extends CdnError {
  override name = 'NoReplicaError'
  constructor(what: string, options?: ErrorOptions) {
    super(`no shard could serve ${what}`, { code: 'CDN_ERR_NO_REPLICA', statusCode: 503, source: 'upstream', retryable: true,
      headers: { 'retry-after': '1' } }, options)
  }
}

export { UpstreamError }
