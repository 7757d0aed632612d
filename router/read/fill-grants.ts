import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Config } from '../../lib/config/config.js'
import type { Logger } from '../../lib/logger.js'
import type { RouterFillGrantMetrics } from '../../lib/metrics.js'
import { AdaptiveTitleError, BadRequestError, CdnError, NotConfiguredError, NotFoundError } from '../../lib/errors.js'
import { chunkLength, isAdaptive, renditionOf, type Manifest } from '../../lib/manifest.js'
import { sendJson } from '../../lib/http/http.js'
import { fillGrantKey, signGrant } from '../../lib/security/fill-grant.js'
import { chunkKey } from '../cluster/keys.js'
import { renditionFile, titleFile, type StoredFile } from '../cluster/files.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Manifests } from '../cluster/manifests.js'

/**
 * Where an edge reads a chunk's bytes, and the grants to read them with
 * (docs/fill-path.md): the router keeps the metadata path (who owns a
 * chunk, who is healthy and least busy, who may fill), the data goes from
 * the owning shards to the edge without crossing it.
 *
 *   GET /v1/content/{id}/fill/{index}?count=N
 *   GET /v1/content/{id}/r/{rid}/fill/{index}?count=N
 *     → 200 { expiresAt, chunks: [{ index, size, sha256, sources: [{ shardId, url, grant }] }] }
 *
 * One answer covers chunk `index` and up to N-1 after it (at most
 * router.fillGrants.maxChunks), so that a fill and its readahead cost one
 * round trip. Sources are the chunk's owners only, in the cluster's read
 * order (healthy first, rotated from one chunk to the next: `spread`; down
 * ones and copies their shard refused lately last), each with its own
 * grant, good for that chunk on that shard until `expiresAt` (epoch ms), at
 * the shard's `fillUrl` (its `url` by default). The route sits behind the
 * same credential as the relay's chunk reads (content-auth.ts).
 *
 * With `manifest=1` the answer also carries the title's manifest (what
 * `/meta` answers) as `manifest`: an edge that does not hold the title yet
 * asks for both at once, so a cold title's first byte costs one round trip
 * to the router, not two answered in turn. Such a question may guess the
 * chunk wrong (the edge guesses it from the Range before it knows the
 * chunk size): past the file's end, a rendition the title does not have, or
 * an adaptive title asked for without one, it is answered with the
 * manifest and no chunks rather than a 404, and so is a question from an
 * edge whose grant bucket is empty (no 429: the manifest is not what the
 * rate limits), each counted as `manifest_only`; a title that does not exist
 * is a 404 either way. `manifest` other than 1 or 0 is a 400.
 *
 * Refusals the edge answers by using the relay: 503 CDN_ERR_FILL_GRANTS_DISABLED
 * (no shard token to derive the key from, or router.fillGrants.enabled off),
 * 429 CDN_ERR_FILL_THROTTLED with Retry-After when the edge is over its rate
 * (router.fillGrants.perEdgeRatePerS, a token bucket per edge id, the
 * `reelcdn-edge` header or else the peer address; with a grant or more left
 * in the bucket an answer covers fewer chunks than asked instead). Each is
 * counted.
 */
export interface FillGrantsDeps {
  config: Readonly<Config>
  cluster: Cluster
  manifests: Manifests
  shardToken: string | undefined
  metrics: RouterFillGrantMetrics
  logger: Logger
  clock?: () => number
}

/** Turned off, or no shard token to derive the key from (said at start): each refusal is not an error for the operator's log. */
class GrantsDisabledError extends NotConfiguredError {
  override name = 'GrantsDisabledError'
  constructor(why: string) {
    super(`fill grants are disabled on this router (${why}): fill through /chunks`, 'CDN_ERR_FILL_GRANTS_DISABLED', { 'retry-after': '300' })
  }
}

class FillThrottledError extends CdnError {
  override name = 'FillThrottledError'
  constructor(edge: string, waitS: number) {
    super(`edge ${edge} is over its fill grant rate (router.fillGrants.perEdgeRatePerS): fill through /chunks or retry later`, {
      code: 'CDN_ERR_FILL_THROTTLED', statusCode: 429, source: 'client', retryable: true, headers: { 'retry-after': String(waitS) } })
  }
}

interface Bucket { tokens: number; at: number }

export class FillGrants {
  private readonly key: Buffer | undefined
  private readonly disabled: string | undefined
  private readonly cfg: Config['router']['fillGrants']
  private readonly buckets = new Map<string, Bucket>()
  private readonly clock: () => number
  /** rotates the healthy owners from one chunk's answer to the next (see spread) */
  private turn = 0

  constructor(private readonly d: FillGrantsDeps) {
    this.cfg = d.config.router.fillGrants
    this.clock = d.clock ?? Date.now
    this.disabled = !this.cfg.enabled ? 'router.fillGrants.enabled is off'
      : d.shardToken === undefined ? 'no shard token to derive the grant key from' : undefined
    this.key = this.disabled === undefined ? fillGrantKey(d.shardToken!) : undefined
  }

  get enabled(): boolean {
    return this.key !== undefined
  }

  /** GET /v1/content/{id}[/r/{rid}]/fill/{index} */
  async answer(req: IncomingMessage, res: ServerResponse, contentId: string, rid: string | undefined, index: number, query: string): Promise<void> {
    if (this.key === undefined) {
      this.d.metrics.grants.inc({ result: 'disabled' })
      throw new GrantsDisabledError(this.disabled!)
    }
    const q = new URLSearchParams(query)
    const count = parseCount(q.get('count'), this.cfg.maxChunks)
    const withManifest = parseManifestFlag(q.get('manifest'))
    const m = await this.d.manifests.get(contentId)
    // the manifest alone: the edge's guess missed, or its bucket is empty; its fill asks for the chunk it reads
    const manifestOnly = (sid: string) => {
      this.d.metrics.grants.inc({ result: 'manifest_only' })
      sendJson(res, 200, { contentId, rid: rid ?? null, sid, expiresAt: this.clock(), chunks: [], manifest: m }, { 'cache-control': 'no-store' })
    }
    let f: StoredFile
    try {
      f = this.file(m, rid, index)
    } catch (err) {
      if (withManifest) return manifestOnly('')
      this.d.metrics.grants.inc({ result: 'not_found' })
      throw err
    }
    const edge = edgeId(req)
    const asked = Math.min(count, f.chunks.length - index)
    let n: number
    try {
      n = this.take(edge, asked)
    } catch (err) {
      if (withManifest && err instanceof FillThrottledError) return manifestOnly(f.sid)
      throw err
    }
    if (n < asked) this.d.metrics.grants.inc({ result: 'capped' }, asked - n)
    const now = this.clock()
    const expiresAt = now + this.cfg.ttlMs
    const exp = Math.floor(expiresAt / 1000)
    const chunks = []
    for (let i = index; i < index + n; i++) {
      const key = chunkKey(f.sid, i)
      const owners = new Set(this.d.cluster.ring.owners(key))
      // the read order, owners only: a non-owner may hold a stale copy after a move; the relay handles that case
      const order = spread(this.d.cluster.readOrder(key).filter(s => owners.has(s.id)), s => this.d.cluster.health.isUp(s.id) && !this.d.cluster.refused.has(s.id, key), this.turn++)
      const sources = order.map(s => ({
        shardId: s.id, url: s.spec.fillUrl ?? s.spec.url, grant: signGrant(this.key!, { sid: f.sid, index: i, shard: s.id, exp, edge }),
      }))
      chunks.push({ index: i, size: chunkLength(f, i), sha256: f.chunks[i]!, sources })
    }
    this.d.metrics.grants.inc({ result: 'issued' }, n)
    sendJson(res, 200, { contentId, rid: rid ?? null, sid: f.sid, expiresAt: exp * 1000, chunks, ...(withManifest ? { manifest: m } : {}) },
      { 'cache-control': 'no-store' })
  }

  /** The file a question is for, which has chunk `index`: else the 404 (or an adaptive title's) naming what is missing. */
  private file(m: Manifest, rid: string | undefined, index: number): StoredFile {
    const contentId = m.contentId
    let f: StoredFile
    if (rid === undefined) {
      if (isAdaptive(m)) throw new AdaptiveTitleError(contentId)
      f = titleFile(m)
    } else {
      const r = isAdaptive(m) ? renditionOf(m, rid) : undefined
      if (!r) throw new NotFoundError(`rendition ${rid} of ${contentId}`)
      f = renditionFile(m, r)
    }
    if (index >= f.chunks.length) throw new NotFoundError(`chunk ${index} of ${f.name} (it has ${f.chunks.length})`)
    return f
  }

  /**
   * Takes up to n grants from the edge's bucket and says how many: an answer
   * covers the chunk asked for and as many after it as the bucket holds (an
   * edge asks for edge.fill.grantChunks, 8, at a time, and a burst below that
   * must not refuse it for ever). Not even one left: a 429 saying when to
   * come back.
   */
  private take(edge: string, n: number): number {
    const rate = this.cfg.perEdgeRatePerS
    if (rate === 0) return n
    const now = this.clock()
    const burst = this.cfg.perEdgeBurst
    let b = this.buckets.get(edge)
    if (b === undefined) {
      // bounded: one bucket per edge id seen; the ids are the operator's edges, a stranger needs the fill credential first
      if (this.buckets.size >= 10_000) this.buckets.clear()
      b = { tokens: burst, at: now }
      this.buckets.set(edge, b)
    }
    b.tokens = Math.min(burst, b.tokens + (now - b.at) / 1000 * rate)
    b.at = now
    if (b.tokens < 1) {
      this.d.metrics.grants.inc({ result: 'throttled' })
      this.d.logger.info({ edge, rate }, 'fill grants throttled: the edge uses the relay')
      throw new FillThrottledError(edge, Math.max(1, Math.ceil((1 - b.tokens) / rate)))
    }
    const k = Math.min(n, Math.floor(b.tokens))
    b.tokens -= k
    return k
  }
}

/**
 * The read order with its healthy owners rotated by `turn`. The router's
 * least-outstanding order sees only its own requests, not the edges' direct
 * reads, so without this every edge would read a chunk from its first owner
 * in ring order; rotating spreads a title's chunks, and the edges asking for
 * one chunk, over its copies. Down owners, and copies refused lately
 * (refused-copies.ts), stay last, in the read order's order.
 */
export function spread<T>(order: T[], up: (s: T) => boolean, turn: number): T[] {
  let n = 0
  while (n < order.length && up(order[n]!)) n++
  if (n < 2) return order
  const k = turn % n
  return [...order.slice(k, n), ...order.slice(0, k), ...order.slice(n)]
}

function parseCount(v: string | null, max: number): number {
  if (v === null) return 1
  const n = Number(v)
  if (!/^[0-9]{1,3}$/.test(v) || n < 1) throw new BadRequestError(`count must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`)
  return Math.min(n, max)
}

function parseManifestFlag(v: string | null): boolean {
  if (v === null || v === '0') return false
  if (v === '1') return true
  throw new BadRequestError(`manifest must be 1 or 0, got ${JSON.stringify(v)}`)
}

function edgeId(req: IncomingMessage): string {
  const h = req.headers['reelcdn-edge']
  if (typeof h === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(h)) return h
  return req.socket.remoteAddress ?? 'unknown'
}
