import { Pool, type Dispatcher } from 'undici'
import { CdnError, NotFoundError, UpstreamCutError, UpstreamError, UpstreamTimeoutError } from '../../lib/errors.js'
import { parseManifest, type Manifest } from '../../lib/manifest.js'
import { digestFromHeader } from '../../lib/integrity/digest.js'
import { BLOCK_SIZE, blockListDigest, blockListMatches } from '../../lib/integrity/block-hasher.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { refName, type ChunkRef } from '../title.js'

/**
 * The edge's client for its upstream (the router), over one undici pool:
 *   GET {base}/v1/content/{id}/meta                 → the manifest
 *   GET {base}/v1/content/{id}/chunks/{index}       → a whole chunk, or a Range of it (206)
 *   GET {base}/v1/content/{id}/chunks/{index}/crcs  → the chunk's block list, checked against the manifest
 *   GET {base}/v1/content/{id}/r/{rid}/chunks/{index}[/crcs]  → the same, of a rendition's file (docs/abr.md)
 * Every failure leaves here as a CdnError that says what to do: 404 for a title
 * the upstream does not have, 504 for a timeout, 502 for anything else,
 * including a response that does not match the manifest we hold. Those a new
 * request may not meet (a reset, a body that ends early, a 502/503 of the
 * router's own, a timeout) are told apart by `retryReason`: a fill resumes
 * them. The connect and headers timeouts and the idle timeout between body
 * pieces are undici's; a fill's overall deadline is its own AbortSignal.
 */
export interface UpstreamOptions {
  baseUrl: string
  token: string | undefined
  connections: number
  headersTimeoutMs: number
  idleTimeoutMs: number
}

export type ChunkBody = Dispatcher.ResponseData['body']

/** A different version of the title upstream: the manifest we hold is stale and must be refetched. */
export class UpstreamVersionError extends CdnError {
  override name = 'UpstreamVersionError'
  constructor(what: string, detail: string) {
    super(`upstream has another version of ${what}: ${detail}`, { code: 'CDN_ERR_UPSTREAM_VERSION', statusCode: 502, source: 'upstream', retryable: true })
  }
}


export type RetryReason = 'cut' | 'status' | 'timeout'

/**
 * Why asking the upstream again may help, or undefined when it cannot: a 404,
 * a refused credential, another version of the title, an answer that does not
 * match the manifest, corrupt bytes that arrived whole.
 */
export function retryReason(err: CdnError): RetryReason | undefined {
  if (err instanceof UpstreamCutError) return err.reason
  return err.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout' : undefined
}

export const MAX_META_BYTES = 16 * 1024 ** 2 // a manifest lists 65 bytes per chunk: ample for any title

export class Upstream {
  private pool: Pool
  private prefix: string
  private readonly auth: Record<string, string>

  constructor(private readonly opts: UpstreamOptions, private readonly metrics: EdgeMetrics) {
    const url = new URL(opts.baseUrl)
    this.prefix = url.pathname.replace(/\/+$/, '')
    this.pool = this.open(url)
    this.auth = opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }
  }

  private open(url: URL): Pool {
    return new Pool(url.origin, {
      connections: this.opts.connections,
      headersTimeout: this.opts.headersTimeoutMs,
      bodyTimeout: this.opts.idleTimeoutMs,
      connect: { timeout: this.opts.headersTimeoutMs },
    })
  }

  /**
   * Points at another upstream (a config reload): requests from now on go to
   * `baseUrl`; those in flight finish on the old pool, which closes after them.
   */
  retarget(baseUrl: string): void {
    const url = new URL(baseUrl)
    const old = this.pool
    this.pool = this.open(url)
    this.prefix = url.pathname.replace(/\/+$/, '')
    void old.close().catch(() => {})
  }

  /**
   * Opens a connection to the upstream (its /healthz) ahead of the first miss:
   * the connect, and undici compiling its HTTP parser on its first connection
   * (tens of ms on a busy machine), are then off the first player's path.
   * Best effort: a failure is the first miss's to report.
   */
  async warm(signal: AbortSignal): Promise<void> {
    await warmPool(this.pool, `${this.prefix}/healthz`, signal)
  }

  async manifest(contentId: string, signal?: AbortSignal): Promise<Manifest> {
    const what = `the manifest of ${contentId}`
    const res = await this.send(`${this.prefix}/v1/content/${contentId}/meta`, {}, 'meta', what, signal)
    if (res.statusCode === 404) {
      await res.body.dump()
      this.metrics.upstreamRequests.inc({ kind: 'meta', result: 'not_found' })
      throw new NotFoundError(`title ${contentId}`)
    }
    if (res.statusCode !== 200) throw await this.statusError(res, 'meta', what)
    let raw: unknown
    try {
      raw = JSON.parse(await readLimited(res.body, MAX_META_BYTES))
    } catch (err) {
      this.metrics.upstreamRequests.inc({ kind: 'meta', result: 'error' })
      if (err instanceof CdnError && err.source === 'upstream') throw err
      throw new UpstreamError(`upstream sent an unusable manifest for ${contentId}: ${(err as Error).message}`, { cause: err })
    }
    return this.manifestOf(contentId, raw)
  }

  /** A manifest upstream sent (its /meta, or with a fill grant answer: grants-cache.ts `withManifest`), checked and counted as /meta's. */
  manifestOf(contentId: string, raw: unknown): Manifest {
    let manifest: Manifest
    try {
      manifest = parseManifest(raw)
    } catch (err) {
      this.metrics.upstreamRequests.inc({ kind: 'meta', result: 'error' })
      throw new UpstreamError(`upstream sent an unusable manifest for ${contentId}: ${(err as Error).message}`, { cause: err })
    }
    if (manifest.contentId !== contentId) {
      this.metrics.upstreamRequests.inc({ kind: 'meta', result: 'error' })
      throw new UpstreamError(`upstream sent the manifest of ${manifest.contentId} for ${contentId}`)
    }
    this.metrics.upstreamRequests.inc({ kind: 'meta', result: 'ok' })
    return manifest
  }

  /** Bytes [from, to) of a chunk, checked against the manifest's size and digest before a byte is read. */
  async chunk(ref: ChunkRef, from: number, to: number, signal: AbortSignal): Promise<ChunkBody> {
    const ranged = from > 0 || to < ref.size
    const kind = ranged ? 'range' : 'chunk'
    const what = `chunk ${refName(ref)}`
    const res = await this.send(this.chunkPath(ref),
      ranged ? { range: `bytes=${from}-${to - 1}` } : {}, kind, what, signal)
    if (res.statusCode !== (ranged ? 206 : 200)) {
      if (res.statusCode === 200 || res.statusCode === 206) {
        res.body.destroy()
        this.metrics.upstreamRequests.inc({ kind, result: 'error' })
        throw new UpstreamError(`upstream answered ${res.statusCode} to ${ranged ? 'a ranged' : 'a whole'} read of ${what}`)
      }
      throw await this.statusError(res, kind, what)
    }
    const h = res.headers
    const fail = (err: CdnError) => {
      res.body.destroy()
      this.metrics.upstreamRequests.inc({ kind, result: 'error' })
      return err
    }
    const etag = h.etag
    if (typeof etag === 'string' && etag !== `"${ref.sha256}"`) throw fail(new UpstreamVersionError(what, `etag ${etag}, manifest says "${ref.sha256}"`))
    const digest = digestFromHeader(h['repr-digest'])
    if (digest !== undefined && digest !== ref.sha256) throw fail(new UpstreamVersionError(what, `Repr-Digest ${digest}, manifest says ${ref.sha256}`))
    if (Number(h['content-length']) !== to - from) throw fail(new UpstreamError(`upstream sent ${what} with content-length ${h['content-length']}, expected ${to - from}`))
    if (ranged && h['content-range'] !== `bytes ${from}-${to - 1}/${ref.size}`)
      throw fail(new UpstreamError(`upstream sent ${what} with content-range ${h['content-range']}, expected bytes ${from}-${to - 1}/${ref.size}`))
    this.metrics.upstreamRequests.inc({ kind, result: 'ok' })
    return res.body
  }

  /**
   * The chunk's block list (a CRC32C per 64 KiB block, 4 bytes each), refused
   * unless its SHA-256 is the one the manifest gives for the chunk.
   */
  async crcs(ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const what = `the block list of chunk ${refName(ref)}`
    const res = await this.send(`${this.chunkPath(ref)}/crcs`, {}, 'crcs', what, signal)
    if (res.statusCode === 404) {
      // a router older than block lists, or a title ingested before them
      await res.body.dump()
      this.metrics.upstreamRequests.inc({ kind: 'crcs', result: 'not_found' })
      throw new NotFoundError(what)
    }
    if (res.statusCode !== 200) throw await this.statusError(res, 'crcs', what)
    const fail = (err: CdnError) => {
      res.body.destroy()
      this.metrics.upstreamRequests.inc({ kind: 'crcs', result: 'error' })
      return err
    }
    const etag = res.headers.etag
    if (typeof etag === 'string' && etag !== `"${ref.sha256}"`) throw fail(new UpstreamVersionError(what, `etag ${etag}, manifest says "${ref.sha256}"`))
    const bytes = 4 * Math.ceil(ref.size / BLOCK_SIZE)
    if (Number(res.headers['content-length']) !== bytes) throw fail(new UpstreamError(`upstream sent ${what} with content-length ${res.headers['content-length']}, expected ${bytes}`))
    let crcs: Buffer
    try {
      crcs = await readBytes(res.body, bytes)
    } catch (err) {
      throw fail(translateUpstreamError(err, what, signal))
    }
    if (!blockListMatches(crcs, ref.size, ref.blocks))
      throw fail(new UpstreamError(`upstream sent ${what} that does not match the manifest (${crcs.length} bytes, sha256 ${blockListDigest(crcs)}, manifest says ${ref.blocks})`))
    this.metrics.upstreamRequests.inc({ kind: 'crcs', result: 'ok' })
    return crcs
  }

  /** Where a chunk of a title's own file, or of a rendition, is read from. */
  private chunkPath(ref: ChunkRef): string {
    return ref.rid === undefined ? `${this.prefix}/v1/content/${ref.contentId}/chunks/${ref.index}`
      : `${this.prefix}/v1/content/${ref.contentId}/r/${ref.rid}/chunks/${ref.index}`
  }

  private async send(path: string, headers: Record<string, string>, kind: string, what: string, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    try {
      return await this.pool.request({ path, method: 'GET', headers: { ...this.auth, ...headers }, signal: signal ?? null })
    } catch (err) {
      const e = translateUpstreamError(err, what, signal)
      this.metrics.upstreamRequests.inc({ kind, result: e.statusCode === 504 ? 'timeout' : 'error' })
      throw e
    }
  }

  private async statusError(res: Dispatcher.ResponseData, kind: string, what: string): Promise<CdnError> {
    let detail = ''
    try {
      const body = JSON.parse(await readLimited(res.body, 64 * 1024)) as { error?: { code?: string; message?: string } }
      if (body.error) detail = `: ${body.error.code ?? ''} ${body.error.message ?? ''}`.trimEnd()
    } catch {
      res.body.destroy()
    }
    const s = res.statusCode
    this.metrics.upstreamRequests.inc({ kind, result: s === 504 ? 'timeout' : 'error' })
    if (s === 504) return new UpstreamTimeoutError(`${what} (the upstream's own upstream timed out${detail})`)
    if (s === 502 || s === 503) return new UpstreamCutError(`upstream answered ${s} for ${what}${detail}`, 'status')
    const hint = s === 401 || s === 403 ? ' (check edge.upstreamTokenFile or REELCDN_EDGE_UPSTREAM_TOKEN)' : ''
    return new UpstreamError(`upstream answered ${s} for ${what}${detail}${hint}`)
  }

  async close(): Promise<void> {
    await this.pool.destroy()
  }
}

/**
 * What is wrong with a chunk answer from one of its holders (a shard under a
 * grant, direct-source.ts; a sibling edge, edge/site/peer-source.ts) before a
 * byte of it is read: its ETag must be the manifest's SHA-256 and its length
 * the bytes [from, to) asked for. '' when nothing is.
 */
export function chunkAnswerMismatch(h: Record<string, string | string[] | undefined>, ref: ChunkRef, from: number, to: number): string {
  if (h.etag !== `"${ref.sha256}"`) return `etag ${String(h.etag)}, manifest says "${ref.sha256}"`
  if (Number(h['content-length']) !== to - from) return `content-length ${String(h['content-length'])}, expected ${to - from}`
  return ''
}

/** undici and socket failures as CdnErrors; an abort carries the CdnError its signal was aborted with. */
export function translateUpstreamError(err: unknown, what: string, signal?: AbortSignal): CdnError {
  if (signal?.aborted && signal.reason instanceof CdnError) return signal.reason
  if (err instanceof CdnError) return err
  const code = (err as { code?: string }).code
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
    return new UpstreamTimeoutError(`${what} (${code})`, { cause: err })
  // the connection failed or broke off (a reset, a refused connect, a socket closed mid-body)
  return new UpstreamCutError(`upstream request for ${what} failed: ${code ?? (err as Error).message}`, 'cut', { cause: err })
}

/** One GET of `path` on `pool`, its answer read and dropped, its failure ignored: a connection to keep. */
export async function warmPool(pool: Pool, path: string, signal: AbortSignal): Promise<void> {
  try {
    const res = await pool.request({ path, method: 'GET', signal })
    await res.body.dump()
  } catch { /* best effort */ }
}

/** A body read whole as text, failing past `max` bytes. */
export async function readLimited(body: ChunkBody, max: number): Promise<string> {
  return (await readBytes(body, max)).toString('utf8')
}

async function readBytes(body: ChunkBody, max: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for await (const piece of body as AsyncIterable<Buffer>) {
    n += piece.length
    if (n > max) {
      body.destroy()
      throw new UpstreamError(`upstream response exceeds ${max} bytes`)
    }
    parts.push(piece)
  }
  return Buffer.concat(parts, n)
}
