import { Pool } from 'undici'
import type { Logger } from '../../lib/logger.js'
import type { EdgeFillPathMetrics } from '../../lib/metrics.js'
import type { ChunkRef } from '../title.js'
import { MAX_META_BYTES, readLimited, warmPool } from './upstream.js'

/**
 * The edge's side of the router's grant route (router/read/fill-grants.ts):
 * for a chunk about to be filled, where its owners are and a grant for each.
 *
 * Theory of operation. One answer covers the chunk and up to `count - 1` after
 * it (edge.fill.grantChunks, 8 by default, and at least the readahead's; a
 * router's per-edge cap may answer fewer), so a cold miss costs one router
 * round trip, and the readahead's fills and a seek within those chunks find
 * their grants here: a seek's lookup was 1.5–2 ms of its first byte, traced.
 * As an answer arrives, the shard it names first for the chunk asked is
 * connected to (`answered`): for a cold title that is while its manifest is
 * still on its way. Answers are kept until
 * `marginMs` before they expire (the router's ttl is 60 s by default), then
 * asked again. Concurrent lookups of one chunk share one request (the fill's
 * block list and first data request both wait on it, then go to the shard in
 * parallel). A player's read of a title whose manifest the edge does not hold
 * yet asks for the chunk it will read with the manifest in the same answer
 * (`withManifest`: one router round trip); when the manifest is already on
 * its way, or the router sends none with grants (an older one), it starts the
 * chunk's lookup alone (`early`) while the manifest is fetched, so the two
 * overlap. The guess (the chunk size of the last manifest, the cluster's
 * before) can be wrong, and a 404 for it says nothing: the fill asks for the
 * chunk it reads.
 *
 * A lookup that yields nothing sends the chunk by the relay (direct-source.ts
 * decides): the router refused (429 over its rate, 5xx), did not answer, or
 * answered for another version of the title. When the router says grants are
 * off (503 CDN_ERR_FILL_GRANTS_DISABLED) or has no grant route (an older
 * router: 404 for the route), no grant is asked for `relayHoldMs`, and that is
 * logged once per hold, so a relay-only cluster costs no extra round trip.
 */
export interface Source {
  shardId: string
  /** the shard's base URL (its fillUrl) */
  url: string
  grant: string
}

export interface ChunkGrant {
  /** the storage id the shard keeps the chunk under */
  sid: string
  /** the chunk's digest in the router's answer: a manifest of another version finds no grant here */
  sha256: string
  sources: Source[]
  /** epoch ms */
  expiresAt: number
  /** epoch ms: asked again from this time on (10 s, or a quarter of its lifetime, before it expires) */
  renewAt: number
}

export interface GrantsOptions {
  /** the router's base URL (edge.upstream) */
  baseUrl: string
  token: string | undefined
  edgeId: string
  /** chunks asked per answer: the chunk and those after it (at least the readahead's; edge.fill.grantChunks) */
  count: number
  relayHoldMs: number
  headersTimeoutMs: number
  /** connections to the router for lookups (edge.upstreamConnections): a cold title's manifest comes this way too, a burst of them must not queue behind a few */
  connections: number
  clock?: () => number
}

interface Answer {
  sid: string
  expiresAt: number
  chunks: { index: number; size: number; sha256: string; sources: Source[] }[]
  /** the title's manifest, when asked for (`withManifest`) */
  manifest?: unknown
}

const MAX_ENTRIES = 4096
/** how long a router seen to answer `manifest=1` without one is not asked it again (it may be upgraded in place meanwhile) */
const SEPARATE_MS = 10 * 60_000
/** a grant answer: a manifest at most, and the grants */
const MAX_ANSWER_BYTES = MAX_META_BYTES + 1024 ** 2
const MARGIN_MS = 10_000

export class GrantsCache {
  private pool: Pool
  private prefix: string
  private readonly headers: Record<string, string>
  private readonly have = new Map<string, ChunkGrant>()
  private readonly asking = new Map<string, Promise<void>>()
  private readonly clock: () => number
  private relayUntil = 0
  /** epoch ms: until then `manifest=1` is not asked, the router having answered it without one (an older router; it may be upgraded meanwhile) */
  private separateUntil = 0
  /** told of the shard an answer names first for the chunk asked (its fillUrl): the direct source connects to it before the fill asks */
  answered?: (url: string) => void

  constructor(private readonly o: GrantsOptions, private readonly metrics: EdgeFillPathMetrics, private readonly logger: Logger) {
    const url = new URL(o.baseUrl)
    this.prefix = url.pathname.replace(/\/+$/, '')
    this.pool = new Pool(url.origin, { connections: o.connections, headersTimeout: o.headersTimeoutMs, bodyTimeout: o.headersTimeoutMs })
    this.headers = { 'reelcdn-edge': o.edgeId, ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }) }
    this.clock = o.clock ?? Date.now
  }

  /** Asks another router from now on (a config reload); lookups in flight finish on the old pool, which closes after them. */
  retarget(baseUrl: string): void {
    const url = new URL(baseUrl)
    const old = this.pool
    this.pool = new Pool(url.origin, { connections: this.o.connections, headersTimeout: this.o.headersTimeoutMs, bodyTimeout: this.o.headersTimeoutMs })
    this.prefix = url.pathname.replace(/\/+$/, '')
    this.have.clear()
    this.relayUntil = 0
    this.separateUntil = 0
    void old.close().catch(() => {})
  }

  /** The chunk's owners and grants, or undefined: fill it by the relay. */
  async get(ref: ChunkRef, signal: AbortSignal): Promise<ChunkGrant | undefined> {
    if (signal.aborted) return undefined
    const now = this.clock()
    if (now < this.relayUntil) return undefined
    const key = keyOf(ref.contentId, ref.rid, ref.index)
    let g = this.have.get(key)
    if (g !== undefined && g.sha256 === ref.sha256 && now < g.renewAt) {
      this.metrics.grants.inc({ result: 'cached' })
      return g
    }
    // a lookup in flight (another fill's, or `early`'s) is shared
    await (this.asking.get(key) ?? this.start(key, ref))
    g = this.have.get(key)
    return g !== undefined && g.sha256 === ref.sha256 && g.expiresAt > this.clock() ? g : undefined
  }

  /**
   * Asks for the grants of chunk `index` now, before its fill needs them,
   * unless they are in hand or being asked for: the edge calls it as it
   * starts fetching a title's manifest, so the two round trips to the router
   * overlap instead of following each other. The fill's `get` then waits for
   * this answer. Nothing happens while the router is known to give no grants.
   */
  early(contentId: string, rid: string | undefined, index: number): void {
    const now = this.clock()
    if (now < this.relayUntil || !(index >= 0)) return
    const key = keyOf(contentId, rid, index)
    const g = this.have.get(key)
    if ((g !== undefined && now < g.renewAt) || this.asking.has(key)) return
    void this.start(key, { contentId, rid, index }, true)
  }

  /**
   * The grants of chunk `index` and the title's manifest in one answer (the
   * route's `manifest=1`), for a player's read of a title the edge does not
   * hold yet: its first byte then waits for one router round trip, not for
   * a grant answer and a manifest answered in turn. The chunk is a guess, as
   * `early`'s. Resolves with the manifest as the router sent it, for the
   * caller to check, or undefined when the answer carried none (no grants
   * from this router, a refusal, no answer, a title it does not have): the
   * caller then asks `/meta`. A fill of the chunk meanwhile waits for this
   * answer, as for `early`'s. Not asked at all (undefined) while the router
   * gives no grants, or for SEPARATE_MS after it answered a grant question
   * without the manifest (a router from before `manifest=1`, which ignores
   * it): the caller then asks for the manifest and calls `early`, the two in
   * parallel, as before.
   */
  withManifest(contentId: string, rid: string | undefined, index: number): Promise<unknown> | undefined {
    // undefined: not asked (the caller fetches the manifest and calls `early`, the two in parallel)
    const now = this.clock()
    if (now < this.separateUntil || now < this.relayUntil || !(index >= 0)) return undefined
    return this.start(keyOf(contentId, rid, index), { contentId, rid, index }, true, true)
  }

  /** A connection to the router ahead of the first lookup (upstream.ts `warm`). */
  warm(signal: AbortSignal): Promise<void> {
    return warmPool(this.pool, `${this.prefix}/healthz`, signal)
  }

  /** A shard said the grant expired (clocks apart, or held too long): the next lookup asks again. */
  invalidate(ref: ChunkRef): void {
    this.have.delete(keyOf(ref.contentId, ref.rid, ref.index))
  }

  /** Asks, and lets lookups of the chunk meanwhile wait for the answer; resolves with what `ask` does (never rejects). */
  private start(key: string, at: ChunkAt, guess = false, manifest = false): Promise<unknown> {
    // its own timeout, not the first asker's signal: one fill's end must not fail the lookup its neighbours share
    const p = this.ask(at, guess, manifest)
    const settled: Promise<void> = p.then(() => { if (this.asking.get(key) === settled) this.asking.delete(key) })
    this.asking.set(key, settled)
    return p
  }

  /**
   * `guess`: asked by `early` or `withManifest`, for a chunk the manifest may not have (an adaptive title, a range past
   * the end): a 404 then says nothing. `manifest`: the title's manifest asked for too; resolves with it (undefined
   * without it).
   */
  private async ask(ref: ChunkAt, guess: boolean, manifest = false): Promise<unknown> {
    const query = `?count=${this.o.count}${manifest ? '&manifest=1' : ''}`
    const path = ref.rid === undefined ? `${this.prefix}/v1/content/${ref.contentId}/fill/${ref.index}${query}`
      : `${this.prefix}/v1/content/${ref.contentId}/r/${ref.rid}/fill/${ref.index}${query}`
    let status: number
    let body: string
    try {
      const res = await this.pool.request({ path, method: 'GET', headers: this.headers, signal: AbortSignal.timeout(this.o.headersTimeoutMs) })
      status = res.statusCode
      body = await readLimited(res.body, MAX_ANSWER_BYTES)
    } catch (err) {
      this.metrics.grants.inc({ result: 'error' })
      this.warnOnce('error', `fill grants could not be had (${(err as { code?: string }).code ?? (err as Error).message}): filling by the relay`)
      return
    }
    if (status !== 200) return this.refused(status, body, guess)
    let a: Answer
    try {
      a = JSON.parse(body) as Answer
      if (!Array.isArray(a.chunks) || typeof a.sid !== 'string' || typeof a.expiresAt !== 'number') throw new Error('unexpected shape')
    } catch (err) {
      this.metrics.grants.inc({ result: 'error' })
      this.warnOnce('error', `the router's fill grant answer is unusable (${(err as Error).message}): filling by the relay`)
      return
    }
    this.metrics.grants.inc({ result: 'router' })
    if (this.have.size + a.chunks.length > MAX_ENTRIES) this.prune()
    const now = this.clock()
    const renewAt = a.expiresAt - Math.min(MARGIN_MS, Math.max(0, a.expiresAt - now) / 4)
    let first: string | undefined
    for (const c of a.chunks) {
      // another version than the manifest this edge holds: `get` finds no grant (its digest differs), the relay tells the fill so
      this.have.set(keyOf(ref.contentId, ref.rid, c.index), { sid: a.sid, sha256: c.sha256, sources: c.sources, expiresAt: a.expiresAt, renewAt })
      if (c.index === ref.index) first = c.sources[0]?.url
    }
    try {
      if (first !== undefined) this.answered?.(first)
    } catch { /* a connection ahead is best effort: the fill's own request reports what is wrong with the URL */ }
    if (manifest && a.manifest === undefined && now >= this.separateUntil) {
      this.separateUntil = now + SEPARATE_MS
      this.logger.info({ forMs: SEPARATE_MS }, 'the router sends no manifest with fill grants (a router from before manifest=1): a cold title\'s manifest is asked for on its own for a while')
    }
    return manifest ? a.manifest : undefined
  }

  private refused(status: number, body: string, guess: boolean): void {
    let code = ''
    let message = ''
    try {
      const e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error
      code = e?.code ?? ''
      message = e?.message ?? ''
    } catch { /* not JSON: the status says enough */ }
    if (code === 'CDN_ERR_FILL_GRANTS_DISABLED' || (status === 404 && message.startsWith('route '))) {
      this.metrics.grants.inc({ result: 'refused' })
      this.relayUntil = this.clock() + this.o.relayHoldMs
      this.logger.warn({ status, code }, `the router gives no fill grants (${message || status}): filling by the relay for edge.fill.relayHoldMs = ${this.o.relayHoldMs} ms`)
      return
    }
    // the fill asks again for the chunk it reads, and hears it then
    if (guess && status === 404) return
    const result = status === 429 ? 'throttled' : 'error'
    this.metrics.grants.inc({ result })
    this.warnOnce(result, `the router refused fill grants (${status} ${code}): filling by the relay`)
  }

  private readonly warned = new Set<string>()
  private warnOnce(kind: string, msg: string): void {
    if (this.warned.has(kind)) return
    this.warned.add(kind)
    this.logger.warn(msg)
  }

  private prune(): void {
    const now = this.clock()
    for (const [k, g] of this.have) if (g.expiresAt <= now + MARGIN_MS) this.have.delete(k)
    if (this.have.size > MAX_ENTRIES / 2) this.have.clear()
  }

  async close(): Promise<void> {
    await this.pool.destroy()
  }
}

/** Which chunk a lookup is for: a fill's ChunkRef, or what `early` guessed before the manifest was in. */
type ChunkAt = Pick<ChunkRef, 'contentId' | 'rid' | 'index'>

function keyOf(contentId: string, rid: string | undefined, index: number): string {
  return `${contentId}/${rid ?? ''}/${index}`
}
