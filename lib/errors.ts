/**
 * Errors carry decisions: an HTTP status, a stable code to branch on, where the
 * fault lies and whether trying again (elsewhere) can help. Messages are for
 * people; code never parses them.
 */
export type ErrorSource = 'client' | 'server' | 'upstream' | 'storage' | 'config'

export interface CdnErrorInfo {
  code: string
  statusCode: number
  source: ErrorSource
  retryable?: boolean
  /** extra response headers, e.g. Content-Range on a 416 */
  headers?: Record<string, string>
}

export class CdnError extends Error {
  override name = 'CdnError'
  readonly code: string
  readonly statusCode: number
  readonly source: ErrorSource
  readonly retryable: boolean
  readonly headers: Record<string, string> | undefined

  constructor(message: string, info: CdnErrorInfo, options?: ErrorOptions) {
    super(message, options)
    this.code = info.code
    this.statusCode = info.statusCode
    this.source = info.source
    this.retryable = info.retryable ?? false
    this.headers = info.headers
  }
}

export class BadRequestError extends CdnError {
  override name = 'BadRequestError'
  constructor(message: string, code = 'CDN_ERR_BAD_REQUEST', options?: ErrorOptions) {
    super(message, { code, statusCode: 400, source: 'client' }, options)
  }
}

export class InvalidIdError extends CdnError {
  override name = 'InvalidIdError'
  constructor(what: string, rule: string) {
    super(`invalid ${what}: ${rule}`, { code: 'CDN_ERR_INVALID_ID', statusCode: 400, source: 'client' })
  }
}

export class NotFoundError extends CdnError {
  override name = 'NotFoundError'
  constructor(what: string, options?: ErrorOptions) {
    super(`${what} not found`, { code: 'CDN_ERR_NOT_FOUND', statusCode: 404, source: 'client' }, options)
  }
}

export class MethodNotAllowedError extends CdnError {
  override name = 'MethodNotAllowedError'
  constructor(method: string, allow: string[]) {
    super(`method ${method} not allowed here; allowed: ${allow.join(', ')}`, {
      code: 'CDN_ERR_METHOD', statusCode: 405, source: 'client', headers: { allow: allow.join(', ') } })
  }
}

export class UnauthorizedError extends CdnError {
  override name = 'UnauthorizedError'
  constructor(message = 'missing or invalid bearer token') {
    super(message, { code: 'CDN_ERR_UNAUTHORIZED', statusCode: 401, source: 'client',
      headers: { 'www-authenticate': 'Bearer realm="reelcdn"' } })
  }
}

export class ConflictError extends CdnError {
  override name = 'ConflictError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_CONFLICT', statusCode: 409, source: 'client' })
  }
}

export class PayloadTooLargeError extends CdnError {
  override name = 'PayloadTooLargeError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_TOO_LARGE', statusCode: 413, source: 'client' })
  }
}

export class RangeNotSatisfiableError extends CdnError {
  override name = 'RangeNotSatisfiableError'
  constructor(size: number) {
    super(`range not satisfiable: the representation has ${size} bytes`, {
      code: 'CDN_ERR_RANGE', statusCode: 416, source: 'client', headers: { 'content-range': `bytes */${size}` } })
  }
}

export class DigestMismatchError extends CdnError {
  override name = 'DigestMismatchError'
  constructor(what: string, expected: string, actual: string) {
    super(`${what}: sha256 mismatch, expected ${expected}, got ${actual}`, {
      code: 'CDN_ERR_DIGEST', statusCode: 400, source: 'client' })
  }
}

/**
 * No room for the bytes: `source` is 'storage' when the disk is short (an operator's matter), 'client' when the
 * request's timing is (room the uploads in flight hold for the moment), answered with a Retry-After, which tells a
 * router the same (router/errors.ts shardRefusal).
 */
export class InsufficientStorageError extends CdnError {
  override name = 'InsufficientStorageError'
  constructor(message: string, options?: ErrorOptions, source: 'storage' | 'client' = 'storage') {
    super(message, { code: 'CDN_ERR_NO_SPACE', statusCode: 507, source, retryable: true, headers: source === 'client' ? { 'retry-after': '1' } : undefined }, options)
  }
}

/** Bytes on disk no longer match their checksum: never served, the chunk is marked corrupt. */
export class CorruptChunkError extends CdnError {
  override name = 'CorruptChunkError'
  constructor(chunk: string, detail: string) {
    super(`chunk ${chunk} is corrupt: ${detail}`, {
      code: 'CDN_ERR_CORRUPT', statusCode: 500, source: 'storage', retryable: true })
  }
}

export class StorageError extends CdnError {
  override name = 'StorageError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_STORAGE', statusCode: 500, source: 'storage', retryable: true }, options)
  }
}

export class UpstreamError extends CdnError {
  override name = 'UpstreamError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_UPSTREAM', statusCode: 502, source: 'upstream', retryable: true }, options)
  }
}

/**
 * The upstream broke off or refused for now: the connection failed or reset,
 * the body ended short (`cut`), or the upstream (a router, a shard) answered 502/503 (`status`).
 * The same request again may well succeed.
 */
export class UpstreamCutError extends UpstreamError {
  override name = 'UpstreamCutError'
  constructor(message: string, readonly reason: 'cut' | 'status', options?: ErrorOptions) {
    super(message, options)
  }
}

export class UpstreamTimeoutError extends CdnError {
  override name = 'UpstreamTimeoutError'
  constructor(what: string, options?: ErrorOptions) {
    super(`upstream timed out on ${what}`, {
      code: 'CDN_ERR_UPSTREAM_TIMEOUT', statusCode: 504, source: 'upstream', retryable: true }, options)
  }
}

/**
 * A route of a feature this service was started without (its secret is not
 * set): 503 naming what to set. The service says so once at start; each
 * request refused for it is not another error for the operator's log
 * (lib/http/http.ts `operatorMustAct`), or any client could flood it.
 */
export class NotConfiguredError extends CdnError {
  override name = 'NotConfiguredError'
  /** `code`: a route's own, where clients branch on it (the router's fill grants) */
  constructor(message: string, code = 'CDN_ERR_NOT_CONFIGURED', headers?: Record<string, string>) {
    super(message, { code, statusCode: 503, source: 'config', headers })
  }
}

export class ServiceUnavailableError extends CdnError {
  override name = 'ServiceUnavailableError'
  constructor(message: string, options?: ErrorOptions) {
    super(message, { code: 'CDN_ERR_UNAVAILABLE', statusCode: 503, source: 'server', retryable: true }, options)
  }
}

export class ConfigError extends CdnError {
  override name = 'ConfigError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_CONFIG', statusCode: 500, source: 'config' })
  }
}

/**
 * errnos of a disk that failed or refuses writes: an operator's matter (level
 * 50), never taken for a client that left. ENOSPC and EDQUOT are no room
 * (507), the others (EIO, EROFS, EFBIG) a storage fault (500).
 */
const DISK_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG'])

/** Wraps anything thrown into a CdnError, keeping the original as `cause`. */
export function toCdnError(err: unknown): CdnError {
  if (err instanceof CdnError) return err
  const e = err as NodeJS.ErrnoException
  if (isDiskErrno(e)) return diskError(e)
  return new CdnError(e?.message ?? String(err), {
    code: 'CDN_ERR_INTERNAL', statusCode: 500, source: 'server' }, { cause: err })
}

/** `err` as a CdnError; a disk errno's message starts with what failed: 'storing chunk x/0: EFBIG: file too large, write'. */
export function fsFailure(err: unknown, doing: string): CdnError {
  const e = err as NodeJS.ErrnoException
  return isDiskErrno(e) && !(err instanceof CdnError) ? diskError(e, `${doing}: `) : toCdnError(err)
}

function isDiskErrno(e: NodeJS.ErrnoException | undefined): boolean {
  return typeof e?.code === 'string' && DISK_ERRNOS.has(e.code)
}

function diskError(e: NodeJS.ErrnoException, doing = ''): CdnError {
  // ENOSPC's message stays as it was ('no space left on device'): a shard's free-space check names the reserve
  const message = doing + (e.code === 'ENOSPC' ? 'no space left on device' : e.message)
  return e.code === 'ENOSPC' || e.code === 'EDQUOT' ? new InsufficientStorageError(message, { cause: e }) : new StorageError(message, { cause: e })
}

export class PreconditionFailedError extends CdnError {
  override name = 'PreconditionFailedError'
  constructor(what: string) {
    super(`precondition failed: ${what}`, { code: 'CDN_ERR_PRECONDITION', statusCode: 412, source: 'client' })
  }
}

/** The upstream sent bytes that fail the manifest's digest: they are never cached, and every reader of them is cut. */
export class UpstreamCorruptError extends CdnError {
  override name = 'UpstreamCorruptError'
  constructor(what: string, detail: string) {
    super(`upstream sent corrupt bytes for ${what}: ${detail}`, {
      code: 'CDN_ERR_UPSTREAM_DIGEST', statusCode: 502, source: 'upstream', retryable: true })
  }
}

/** The player went away mid-response: nothing to answer, nothing to log (nginx's 499). */
export class ClientClosedError extends CdnError {
  override name = 'ClientClosedError'
  constructor(detail = 'the client closed the connection', options?: ErrorOptions) {
    super(detail, { code: 'CDN_ERR_CLIENT_GONE', statusCode: 499, source: 'client' }, options)
  }
}

/** A single-file read of an adaptive title (issue 15): its bytes are its renditions', played through its playlists. */
export class AdaptiveTitleError extends CdnError {
  override name = 'AdaptiveTitleError'
  constructor(contentId: string) {
    super(`title ${contentId} is adaptive: play /v1/content/${contentId}/master.m3u8 (HLS) or /v1/content/${contentId}/manifest.mpd (DASH)`, {
      code: 'CDN_ERR_ADAPTIVE', statusCode: 404, source: 'client' })
  }
}

/** A playlist or rendition of a single-file title: it has none. */
export class NotAdaptiveError extends CdnError {
  override name = 'NotAdaptiveError'
  constructor(contentId: string, file: string) {
    super(`title ${contentId} is a single file with no playlists or renditions (no ${file}): play /v1/content/${contentId}`, {
      code: 'CDN_ERR_NOT_ADAPTIVE', statusCode: 404, source: 'client' })
  }
}
