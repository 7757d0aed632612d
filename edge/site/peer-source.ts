import { Pool, type Dispatcher } from 'undici'
import { LRUCache } from 'lru-cache'
import { BLOCK_SIZE, blockListMatches } from '../../lib/integrity/block-hasher.js'
import { CdnError, UpstreamError } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import type { EdgePeerMetrics } from '../../lib/metrics.js'
import { refName, type ChunkRef } from '../title.js'
import { latestBlockList, rememberBlockList } from '../fill/block-list.js'
import type { ChunkFetch, CrcsFetch } from '../fill/fill.js'
import type { BodyDest } from '../../lib/http/shard-read.js'
import { BlockRun } from '../../lib/integrity/block-run.js'
import { chunkAnswerMismatch, translateUpstreamError } from '../fill/upstream.js'
import type { SiteMember, SiteView } from './site-view.js'
import { PEER_FROM, PEER_HOP, PEER_ID, peerChunkPath } from './peer-path.js'

/**
 * Peer fill, the asking side (docs/peer-fill.md): a fill of a chunk of a
 * title this edge does not own at its site first asks the title's owner
 * there, then its own fill path. It stands in for the fill's `chunk` and
 * `crcs` (edge/fill/fill.ts) around the direct source or the relay, as the
 * direct source stands in for the relay: the coalescer, the fill and its
 * verification do not know where bytes came from.
 *
 * Theory of operation, for one request of a fill for bytes [from, to):
 *   1. whom to ask: the title's first owner at the site (site-view.ts, by
 *      lib/affinity.ts). None when this edge owns it, has no site, or is
 *      answering a peer request for this very chunk (`serving`: a fill a
 *      peer's request started or joined never asks a peer, so a request is
 *      never forwarded: one hop). An owner that failed lately is held back
 *      for `holdMs` (counted `held`), so a slow or dead sibling costs one
 *      timeout, not one per chunk.
 *   2. `GET /v1/peer/...` with the edge credential, this edge's id and
 *      `X-Reelcdn-Peer-Hop: 1`. The answer's status, ETag (the manifest's
 *      SHA-256 of the chunk) and length are checked before a byte is read,
 *      and its first byte must come within `firstByteTimeoutMs`; otherwise
 *      the whole request goes by this edge's own path (counted: timeout,
 *      refused, error).
 *   3. with the chunk's block list, the body passes through a BlockRun
 *      (lib/integrity/block-run.ts): only whole verified blocks go on. A block
 *      that fails, a body that breaks off or ends short: the rest, from the
 *      end of the last verified block, by this edge's own path, so no byte
 *      of a lying or dying peer reaches the fill and none is fetched twice.
 *      The fill's own gate checks every block again and the whole-chunk
 *      SHA-256 decides what is cached, as for any fill.
 * The block list itself is asked from the owner the same way (it answers
 * it from its tiers or its own fill, so a chunk a sibling holds costs the
 * origin nothing), checked against the manifest's digest, and otherwise
 * fetched by this edge's own path.
 */
export interface PeerOptions {
  token: string
  firstByteTimeoutMs: number
  holdMs: number
  connections: number
  idleTimeoutMs: number
}

type Body = Dispatcher.ResponseData['body']

type Outcome = 'timeout' | 'refused' | 'error'

/** Why a peer's answer was not used. */
class PeerError extends UpstreamError {
  override name = 'PeerError'
  constructor(message: string, readonly outcome: Outcome) {
    super(message)
  }
}

export class PeerSource {
  private readonly pools = new Map<string, Pool>()
  /** the block list the fill of each chunk got (from the owner or not): the chunk's data requests verify with it */
  private readonly lists = new LRUCache<string, Promise<Buffer>>({ max: 1024 })
  /** owners held back after a failure, until performance.now() passes the time */
  private readonly held = new Map<string, number>()
  /** chunk keys this edge is answering peer requests for, with how many: their fills never ask a peer */
  readonly serving = new Map<string, number>()
  /** verified bytes received from owners (lib/metrics.ts folds it into its counter when scraped) */
  private readonly tally: { n: number }

  constructor(private readonly view: SiteView, private readonly next: { chunk: ChunkFetch; crcs: CrcsFetch | undefined },
    private readonly o: PeerOptions, private readonly metrics: EdgePeerMetrics, private readonly logger: Logger) {
    this.tally = metrics.tally
  }

  /** The owner to ask for `ref`, if any (step 1). */
  private peerFor(ref: ChunkRef): SiteMember | undefined {
    if (this.serving.has(ref.key)) return undefined
    const peer = this.view.peerFor(ref.contentId)
    if (peer === undefined) return undefined
    const until = this.held.get(peer.id)
    if (until !== undefined) {
      if (performance.now() < until) {
        this.metrics.fills.inc({ outcome: 'held' })
        return undefined
      }
      this.held.delete(peer.id)
    }
    return peer
  }

  readonly chunk: ChunkFetch = async (ref, from, to, signal, dest) => {
    const peer = this.peerFor(ref)
    if (peer === undefined) return this.next.chunk(ref, from, to, signal, dest)
    let first: { body: Body; it: AsyncIterator<Buffer>; piece: Buffer; held: boolean }
    try {
      first = await this.open(peer, ref, from, to, signal)
    } catch (err) {
      if (signal.aborted) throw translateUpstreamError(err, `chunk ${refName(ref)}`, signal)
      this.fellBack(peer, ref, err, from)
      return this.next.chunk(ref, from, to, signal, dest)
    }
    // `held` (fill.ts): the owner had the chunk in its tiers; a fallback to this edge's own path clears it
    // `verified` (fill.ts): how far the blocks handed on passed the block list; not moved by a fallback's bytes
    const hold = { stopped: false, held: first.held, verified: from }
    const it = this.read(peer, ref, from, to, signal, first, hold, dest)
    return { [Symbol.asyncIterator]: () => it, destroy: () => { hold.stopped = true; first.body.destroy(); void it.return(undefined) },
      get held() { return hold.held }, get verified() { return hold.verified } }
  }

  readonly crcs: CrcsFetch = (ref, signal) => rememberBlockList(this.lists, ref.key, this.list(ref, signal))

  private async list(ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    const peer = ref.blocks === undefined ? undefined : this.peerFor(ref)
    if (peer !== undefined) {
      try {
        return await this.peerList(peer, ref, signal)
      } catch (err) {
        if (signal.aborted) throw translateUpstreamError(err, `the block list of chunk ${refName(ref)}`, signal)
        this.fellBack(peer, ref, err, -1)
      }
    }
    if (this.next.crcs === undefined) throw new UpstreamError(`no block list source for chunk ${refName(ref)}`)
    return this.next.crcs(ref, signal)
  }

  /** Steps 2-3 for bytes [from, to): the owner's body, verified block by block; the rest by this edge's own path on any failure. */
  private async *read(peer: SiteMember, ref: ChunkRef, from: number, to: number, signal: AbortSignal,
    first: { body: Body; it: AsyncIterator<Buffer>; piece: Buffer }, hold: { stopped: boolean; held: boolean; verified: number },
    dest: BodyDest | undefined): AsyncGenerator<Buffer> {
    const what = `chunk ${refName(ref)} from ${peer.id}`
    let pos = from
    let fallback = false
    try {
      const crcs = from % BLOCK_SIZE === 0 ? await this.listFor(ref) : undefined
      const run = crcs === undefined ? undefined : new BlockRun(crcs, ref.size, from)
      let piece: Buffer | undefined = first.piece
      while (piece !== undefined) {
        if (run === undefined) {
          pos += piece.length
          this.tally.n += piece.length
          yield piece
        } else {
          for (const b of run.push(piece)) {
            pos += b.length
            this.tally.n += b.length
            hold.verified = pos
            yield b
          }
          if (run.bad >= 0) throw new PeerError(`${peer.id} sent block ${run.bad} of chunk ${refName(ref)} with a CRC32C that does not match the manifest's block list`, 'error')
        }
        if (hold.stopped) return
        const r = await first.it.next()
        piece = r.done ? undefined : r.value
      }
      const rest = run?.rest()
      if (rest !== undefined) {
        pos += rest.length
        this.tally.n += rest.length
        yield rest
      }
      if (pos < to) throw new PeerError(`${peer.id} ended ${what} at byte ${pos}, expected ${to}`, 'error')
      this.metrics.fills.inc({ outcome: 'served' })
    } catch (err) {
      first.body.destroy()
      if (hold.stopped) return
      if (signal.aborted) throw translateUpstreamError(err, what, signal)
      this.fellBack(peer, ref, err, pos)
      fallback = true
    } finally {
      first.body.destroy()
    }
    hold.held = false
    if (fallback && !hold.stopped) yield* await this.next.chunk(ref, pos, to, signal, dest)
  }

  /** The owner's answer for [from, to), checked before a byte is read, and its first piece: all within the first-byte timeout. */
  private async open(peer: SiteMember, ref: ChunkRef, from: number, to: number, signal: AbortSignal): Promise<{ body: Body; it: AsyncIterator<Buffer>; piece: Buffer; held: boolean }> {
    const ranged = from > 0 || to < ref.size
    return this.timed(peer, ref, signal, async s => {
      const res = await this.request(peer, peerChunkPath(ref), ranged ? { range: `bytes=${from}-${to - 1}` } : {}, s)
      if (res.statusCode !== (ranged ? 206 : 200)) throw await refusal(res, peer, `chunk ${refName(ref)}`)
      const bad = chunkAnswerMismatch(res.headers, ref, from, to)
      if (bad) {
        res.body.destroy()
        throw new PeerError(`${peer.id} answered chunk ${refName(ref)} with ${bad}`, 'error')
      }
      const it = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
      const r = await it.next()
      if (r.done) throw new PeerError(`${peer.id} sent no byte of chunk ${refName(ref)}`, 'error')
      const where = res.headers[PEER_FROM]
      return { body: res.body, it, piece: r.value, held: where === 'ram' || where === 'disk' }
    })
  }

  private peerList(peer: SiteMember, ref: ChunkRef, signal: AbortSignal): Promise<Buffer> {
    return this.timed(peer, ref, signal, async s => {
      const res = await this.request(peer, `${peerChunkPath(ref)}/crcs`, {}, s)
      if (res.statusCode !== 200) throw await refusal(res, peer, `the block list of chunk ${refName(ref)}`)
      const crcs = Buffer.from(await res.body.arrayBuffer())
      if (!blockListMatches(crcs, ref.size, ref.blocks))
        throw new PeerError(`${peer.id} sent a block list of chunk ${refName(ref)} that does not match the manifest`, 'error')
      return crcs
    })
  }

  /** Runs `fn` under the fill's signal and the first-byte timeout; a timeout leaves as a PeerError 'timeout'. */
  private async timed<T>(peer: SiteMember, ref: ChunkRef, signal: AbortSignal, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController()
    const ms = this.o.firstByteTimeoutMs
    const timer = setTimeout(() => ac.abort(new PeerError(`${peer.id} sent no first byte of chunk ${refName(ref)} within edge.peer.firstByteTimeoutMs = ${ms} ms`, 'timeout')), ms)
    try {
      return await fn(AbortSignal.any([signal, ac.signal]))
    } catch (err) {
      if (ac.signal.aborted && !signal.aborted) throw ac.signal.reason
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  private request(peer: SiteMember, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    let pool = this.pools.get(peer.url)
    if (pool === undefined) {
      pool = new Pool(peer.url, { connections: this.o.connections, bodyTimeout: this.o.idleTimeoutMs })
      this.pools.set(peer.url, pool)
    }
    return pool.request({ path, method: 'GET', signal, headers: {
      authorization: `Bearer ${this.o.token}`, [PEER_ID]: this.view.selfId, [PEER_HOP]: '1', ...headers } })
  }

  /** The block list the fill of this chunk got, once it is in (a failed one: none; the fill's gate and digest decide). */
  private async listFor(ref: ChunkRef): Promise<Buffer | undefined> {
    if (ref.blocks === undefined) return undefined
    return latestBlockList(this.lists, ref.key)
  }

  /** Counts and says why the owner was not used (`at`: the byte the own path takes over from; -1: the block list), and holds it back. */
  private fellBack(peer: SiteMember, ref: ChunkRef, err: unknown, at: number): void {
    const outcome: Outcome = err instanceof PeerError ? err.outcome : err instanceof CdnError && err.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'timeout' : 'error'
    this.metrics.fills.inc({ outcome })
    this.held.set(peer.id, performance.now() + this.o.holdMs)
    const line = { peer: peer.id, chunk: refName(ref), at: at < 0 ? 'block list' : at, outcome, err: (err as Error).message }
    const msg = `peer fill fell back to this edge's own fill path; ${peer.id} is not asked for ${this.o.holdMs} ms`
    if (outcome === 'refused') this.logger.info(line, msg)
    else this.logger.warn(line, msg)
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map(p => p.destroy()))
  }
}

async function refusal(res: Dispatcher.ResponseData, peer: SiteMember, what: string): Promise<PeerError> {
  let code = ''
  try {
    code = (JSON.parse(await res.body.text()) as { error?: { code?: string } }).error?.code ?? ''
  } catch { /* not JSON */ }
  return new PeerError(`${peer.id} answered ${res.statusCode} ${code} for ${what}`.replace('  ', ' '), res.statusCode >= 500 && res.statusCode !== 508 ? 'error' : 'refused')
}
