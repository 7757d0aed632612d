import { Pool, type Dispatcher } from 'undici'
import { LRUCache } from 'lru-cache'
import { BLOCK_SIZE, blockListMatches } from '../../lib/integrity/block-hasher.js'
import { IntervalLog } from '../../lib/interval-log.js'
import { CdnError, UpstreamError } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import type { EdgeFillPathMetrics } from '../../lib/metrics.js'
import { refName, type ChunkRef } from '../title.js'
import { HeadLists, latestBlockList, rememberBlockList } from './block-list.js'
import type { ChunkFetch, CrcsFetch } from './fill.js'
import type { ChunkGrant, GrantsCache, Source } from './grants-cache.js'
import { BlockRun } from '../../lib/integrity/block-run.js'
import { chunkAnswerMismatch, translateUpstreamError, type Upstream } from './upstream.js'
import { ShardReads, type BodyDest, type ShardBody } from '../../lib/http/shard-read.js'
import { BLOCK_LIST, blockListFromHead, WANT_BLOCK_LIST } from '../../lib/integrity/block-list-header.js'

/**
 * Where a fill's bytes come from with edge.fill.path = direct
 * (docs/fill-path.md): straight from the chunk's owners, under the grants the
 * router signs (grants-cache.ts), failing over between owners on the edge.
 * It stands in for the relay's `chunk` and `crcs` (upstream.ts) and nothing
 * else changes: the fill (fill.ts) still releases a byte only once its block
 * passes the block list whose digest the manifest holds, and caches a chunk
 * only once its SHA-256 matches.
 *
 * Theory of operation, for one request of a fill for bytes [from, to):
 *   1. the grant lookup (one router round trip per answer, which covers up to
 *      `count` chunks; shared by the block list request and the data
 *      request, which then go to the shard in parallel, on a connection
 *      opened as the answer came). No grant: the relay, counted (`no_grant`). The
 *      data request asks for the list in its answer's head too: whichever
 *      comes first (and matches the manifest) is the fill's list, so the
 *      first block does not wait for the list's own answer, which a shard
 *      busy writing the data sends late.
 *   2. the owners in the router's read order. Each answer is checked before a
 *      byte is read (status, ETag against the manifest, length); a refusal,
 *      a connection that fails, an expired grant (asked again once, at once)
 *      or a forged one moves to the next owner.
 *      A fill's data request to an http: shard is read straight into the
 *      fill's buffer (lib/http/shard-read.ts: no per-read allocation, no copy); the
 *      block list and anything without a destination go through undici.
 *   3. with the chunk's block list (the one this source fetched for the
 *      fill), the body passes through a BlockRun: only whole verified
 *      blocks go on. A block that fails its CRC32C, a body that breaks off or
 *      ends short: the next owner is asked for the rest from the end of the
 *      last verified block, so nothing is sent twice and no byte of a lying
 *      shard reaches the fill. Without a list (a title ingested before
 *      them, or the list could not be had) bytes go on as they come and the
 *      whole-chunk digest decides, as on the relay.
 *   4. no owner left: the rest by the relay (`owners`), said once.
 * The fill's own retries (fill.ts) still apply on top: a request that fails
 * anyway is asked again, and starts at step 1.
 */
export interface DirectOptions {
  connections: number
  headersTimeoutMs: number
  idleTimeoutMs: number
}

type Body = Dispatcher.ResponseData['body'] | ShardBody

/** what a fill's own block-list request answers once a data answer's head settled the fill's wait: never used */
const UNUSED = Buffer.alloc(0)

/** The shard body a read is on, whether its reader destroyed it, and how far what it yielded was verified. */
interface Hold {
  body: Body | undefined
  stopped: boolean
  /** the chunk offset up to which every byte yielded passed its block's CRC32C (ChunkBody.verified) */
  verified: number
}

/** A shard's refusal: its status and code. */
class SourceError extends UpstreamError {
  override name = 'SourceError'
  constructor(message: string, readonly reason: 'refused' | 'grant' | 'expired' | 'cut' | 'corrupt') {
    super(message)
  }
}

export class DirectSource {
  private readonly pools = new Map<string, Pool>()
  /** the zero-copy readers of fills' data, per http: shard origin */
  private readonly reads = new Map<string, ShardReads>()
  /** the block list this source fetched for each chunk's fill: the data requests verify with it */
  private readonly lists = new LRUCache<string, Promise<Buffer>>({ max: 1024 })
  /** fills' waits for their block lists, which a data answer's head may settle */
  private readonly heads = new HeadLists()
  /** a shard's head list that does not match the manifest: warned once a minute per shard */
  private readonly headMismatchLogs = new Map<string, IntervalLog>()
  private readonly warned = new Set<string>()

  constructor(private readonly grants: GrantsCache, private readonly relay: Upstream, private readonly o: DirectOptions,
    private readonly metrics: EdgeFillPathMetrics, private readonly logger: Logger) {
    // a cold title's grants come back while its manifest is still on its way: the connect to the shard goes then, not after
    grants.answered = url => { if (url.startsWith('http:')) this.shardReads(url).warm() }
  }

  readonly chunk: ChunkFetch = async (ref, from, to, signal, dest) => {
    const g = await this.grants.get(ref, signal)
    if (g === undefined) {
      this.metrics.fallbacks.inc({ reason: 'no_grant' })
      return counted(this.relay.chunk(ref, from, to, signal), this.metrics.bytes.relay)
    }
    const hold: Hold = { body: undefined, stopped: false, verified: from }
    const it = this.read(ref, g, from, to, signal, hold, dest)
    // destroy may come while the generator waits for a piece: the shard's body goes at once, and no next owner is asked
    return { [Symbol.asyncIterator]: () => it, destroy: () => { hold.stopped = true; hold.body?.destroy(); void it.return(undefined) },
      get verified() { return hold.verified } }
  }

  /** Connects to the router ahead of the first miss (upstream.ts `warm`). */
  warm(signal: AbortSignal): Promise<void> {
    return this.grants.warm(signal)
  }

  /** A player's read of chunk `index` is about to miss (its title's manifest is on its way): its grants are asked for now. */
  early(contentId: string, rid: string | undefined, index: number): void {
    this.grants.early(contentId, rid, index)
  }

  /** The same, with the title's manifest in the same answer (grants-cache.ts `withManifest`). */
  withManifest(contentId: string, rid: string | undefined, index: number): Promise<unknown> | undefined {
    return this.grants.withManifest(contentId, rid, index)
  }

  /** The chunk's block list: its own request, or a data answer's head if that comes first (block-list.ts HeadLists). */
  readonly crcs: CrcsFetch = (ref, signal) => rememberBlockList(this.lists, ref.key, this.heads.race(ref.key, decided => this.list(ref, signal, decided)))

  /** The list from the owners in turn, then the relay; once `decided` (a head's list came first) it asks no one more: its answer is not used. */
  private async list(ref: ChunkRef, signal: AbortSignal, decided: () => boolean): Promise<Buffer> {
    const g = await this.grants.get(ref, signal)
    if (g !== undefined) {
      for (const src of g.sources) {
        if (decided()) return UNUSED
        try {
          const res = await this.request(src, `/v1/chunks/${g.sid}/${ref.index}/crcs`, {}, signal)
          if (res.statusCode !== 200) throw await refusal(res, src, 'its block list')
          const crcs = Buffer.from(await res.body.arrayBuffer())
          // a head's list came meanwhile: this one is not checked (hashed) too
          if (decided()) return UNUSED
          if (blockListMatches(crcs, ref.size, ref.blocks)) return crcs
          this.failover('corrupt', src, ref, 'sent a block list that does not match the manifest')
        } catch (err) {
          if (decided()) return UNUSED
          if (signal.aborted) throw translateUpstreamError(err, `the block list of chunk ${refName(ref)}`, signal)
          this.failover(reasonOf(err), src, ref, (err as Error).message)
        }
      }
    }
    return decided() ? UNUSED : this.relay.crcs(ref, signal)
  }

  /** Bytes [from, to) from the owners in turn, verified block by block when the list is in hand; the relay for what none could send. */
  private async *read(ref: ChunkRef, g: ChunkGrant, from: number, to: number, signal: AbortSignal, hold: Hold, dest: BodyDest | undefined): AsyncGenerator<Buffer> {
    const what = `chunk ${refName(ref)}`
    let pos = from
    let sources = g.sources
    let renewed = false
    const tally = this.metrics.bytes.direct
    for (let i = 0; pos < to && !hold.stopped; i++) {
      if (i >= sources.length) {
        this.metrics.fallbacks.inc({ reason: 'owners' })
        this.warnOnce('owners', `no owner could send ${what} from byte ${pos}: the rest by the relay`)
        yield* await counted(this.relay.chunk(ref, pos, to, signal), this.metrics.bytes.relay)
        return
      }
      const src = sources[i]!
      let body: Body
      let headList: Buffer | undefined
      try {
        ({ body, headList } = await this.open(src, g.sid, ref, pos, to, signal, dest))
      } catch (err) {
        if (signal.aborted) throw translateUpstreamError(err, what, signal)
        if (err instanceof SourceError && err.reason === 'expired' && !renewed) {
          // clocks apart, or a grant held past its time: ask the router once more, then the owners again
          renewed = true
          this.grants.invalidate(ref)
          const fresh = await this.grants.get(ref, signal)
          if (fresh !== undefined) {
            sources = fresh.sources
            i = -1
            continue
          }
        }
        this.failover(reasonOf(err), src, ref, (err as Error).message)
        continue
      }
      hold.body = body
      const crcs = pos % BLOCK_SIZE === 0 ? headList ?? await this.listFor(ref) : undefined
      const run = crcs === undefined ? undefined : new BlockRun(crcs, ref.size, pos)
      try {
        for await (const piece of body as AsyncIterable<Buffer>) {
          if (run === undefined) {
            pos += piece.length
            tally.n += piece.length
            yield piece
            continue
          }
          for (const b of run.push(piece)) {
            pos += b.length
            tally.n += b.length
            hold.verified = pos
            yield b
          }
          if (run.bad >= 0) throw new SourceError(`shard ${src.shardId} sent block ${run.bad} of ${what} with a CRC32C that does not match the manifest's block list`, 'corrupt')
        }
        const rest = run?.rest()
        if (rest !== undefined) {
          pos += rest.length
          tally.n += rest.length
          yield rest
        }
        if (pos < to) throw new SourceError(`shard ${src.shardId} ended ${what} at byte ${pos}, expected ${to}`, 'cut')
      } catch (err) {
        body.destroy()
        if (hold.stopped) return
        if (signal.aborted) throw translateUpstreamError(err, what, signal)
        this.failover(reasonOf(err), src, ref, (err as Error).message)
        continue
      } finally {
        body.destroy()
      }
    }
  }

  /**
   * One owner's answer for [from, to), checked against the manifest before a
   * byte is read, and the block list its head carried (asked for when the
   * manifest anchors one; lib/integrity/block-list-header.ts), if that is the
   * manifest's: it also settles the fill's own wait for the list.
   */
  private async open(src: Source, sid: string, ref: ChunkRef, from: number, to: number, signal: AbortSignal,
    dest: BodyDest | undefined): Promise<{ body: Body; headList: Buffer | undefined }> {
    const ranged = from > 0 || to < ref.size
    const path = `/v1/chunks/${sid}/${ref.index}`
    // the list in the head while the fill waits for one, or none was had here (a site's peer fill asked for it elsewhere)
    const want = ref.blocks !== undefined && (this.heads.waiting(ref.key) || !this.lists.has(ref.key))
    const headers: Record<string, string> = { ...(ranged ? { range: `bytes=${from}-${to - 1}` } : {}), ...(want ? { [WANT_BLOCK_LIST]: '1' } : {}) }
    const res = dest !== undefined && src.url.startsWith('http:') ? await this.readInto(src, path, headers, dest, from, ranged ? 206 : 200, signal)
      : await this.request(src, path, headers, signal)
    if (res.statusCode !== (ranged ? 206 : 200)) throw await refusal(res, src, `bytes ${from}-${to - 1}`)
    const bad = chunkAnswerMismatch(res.headers, ref, from, to)
    if (bad) {
      res.body.destroy()
      throw new SourceError(`shard ${src.shardId} answered chunk ${refName(ref)} with ${bad}`, 'refused')
    }
    const list = ref.blocks === undefined ? undefined : blockListFromHead(res.headers[BLOCK_LIST], ref.size, ref.blocks)
    if (list === 'mismatch') {
      // the list's own request (checked the same way) decides; a shard that lies here is likely to lie there too
      this.metrics.headLists.inc({ result: 'mismatch' })
      let every = this.headMismatchLogs.get(src.shardId)
      if (every === undefined) this.headMismatchLogs.set(src.shardId, every = new IntervalLog(60_000))
      const log = every.take()
      if (log) this.logger.warn({ shard: src.shardId, chunk: refName(ref), skipped: log.skipped }, 'a shard sent a block list in its answer\'s head that does not match the manifest: not used')
      return { body: res.body, headList: undefined }
    }
    if (list !== undefined) {
      this.metrics.headLists.inc({ result: 'used' })
      if (this.heads.waiting(ref.key)) this.heads.offer(ref.key, list)
      else if (!this.lists.has(ref.key)) rememberBlockList(this.lists, ref.key, Promise.resolve(list))
    }
    return { body: res.body, headList: list }
  }

  /** The data request, its body landing in the fill's buffer (lib/http/shard-read.ts). */
  private readInto(src: Source, path: string, headers: Record<string, string>, dest: BodyDest, from: number, expect: number, signal: AbortSignal) {
    return this.shardReads(src.url).get(path, { authorization: `Grant ${src.grant}`, ...headers }, dest, from, expect, signal)
  }

  private shardReads(url: string): ShardReads {
    let reads = this.reads.get(url)
    if (reads === undefined) {
      reads = new ShardReads(url, this.o)
      this.reads.set(url, reads)
    }
    return reads
  }

  private async request(src: Source, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    let pool = this.pools.get(src.url)
    if (pool === undefined) {
      pool = new Pool(src.url, { connections: this.o.connections, headersTimeout: this.o.headersTimeoutMs,
        bodyTimeout: this.o.idleTimeoutMs, connect: { timeout: this.o.headersTimeoutMs } })
      this.pools.set(src.url, pool)
    }
    return pool.request({ path, method: 'GET', headers: { authorization: `Grant ${src.grant}`, ...headers }, signal })
  }

  /** The block list fetched for this chunk's fill, if any and once it is in (a failed one: none, the digest decides). */
  private async listFor(ref: ChunkRef): Promise<Buffer | undefined> {
    if (ref.blocks === undefined) return undefined
    return latestBlockList(this.lists, ref.key)
  }

  private failover(reason: string, src: Source, ref: ChunkRef, detail: string): void {
    this.metrics.failovers.inc({ reason })
    if (reason === 'corrupt') this.logger.warn({ shard: src.shardId, chunk: refName(ref) }, `${detail}; reading the rest from the next owner`)
    else this.logger.info({ shard: src.shardId, chunk: refName(ref), reason }, `direct read failed (${detail}); trying the next owner`)
  }

  private warnOnce(kind: string, msg: string): void {
    if (this.warned.has(kind)) return
    this.warned.add(kind)
    this.logger.warn(msg)
  }

  async close(): Promise<void> {
    for (const r of this.reads.values()) r.close()
    await Promise.all([...this.pools.values()].map(p => p.destroy()))
    await this.grants.close()
  }
}

/** The relay's body, its bytes counted by path. */
export async function counted(body: Promise<AsyncIterable<Buffer> & { destroy(): void }>, tally: { n: number }): Promise<AsyncIterable<Buffer> & { destroy(): void }> {
  const b = await body
  const it = (async function* () {
    try {
      for await (const piece of b) {
        tally.n += piece.length
        yield piece
      }
    } finally {
      b.destroy()
    }
  })()
  // the body too: a generator never started does not run its finally
  return { [Symbol.asyncIterator]: () => it, destroy: () => { b.destroy(); void it.return(undefined) } }
}

async function refusal(res: { statusCode: number; body: { text(): Promise<string> } }, src: Source, what: string): Promise<SourceError> {
  let code = ''
  try {
    code = (JSON.parse(await res.body.text()) as { error?: { code?: string } }).error?.code ?? ''
  } catch { /* not JSON */ }
  const reason = code === 'CDN_ERR_GRANT_EXPIRED' ? 'expired' : code === 'CDN_ERR_GRANT_INVALID' || res.statusCode === 401 ? 'grant' : 'refused'
  return new SourceError(`shard ${src.shardId} answered ${res.statusCode} ${code} for ${what}`.replace('  ', ' '), reason)
}

function reasonOf(err: unknown): string {
  if (err instanceof SourceError) return err.reason === 'expired' ? 'grant' : err.reason
  return err instanceof CdnError && err.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout' : 'cut'
}
