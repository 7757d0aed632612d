import { LRUCache } from 'lru-cache'
import { NotFoundError } from '../../lib/errors.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import { buildTitle, type Title } from '../title.js'
import type { Upstream } from './upstream.js'

/**
 * Title metadata from upstream, cached for `ttlMs` (a deleted title stops
 * being served within it) and a 404 for `negativeTtlMs` (a burst of requests
 * for a missing title costs one upstream lookup). Concurrent misses share one
 * fetch. `invalidate` drops an entry at once: a purge, or a chunk fetch that
 * found another version upstream. A fetch that was in flight when its entry
 * was invalidated is not cached (its promise is no longer the registered one).
 * A player's read that waits for a title's manifest asks for it together with
 * the grants of the chunk it reads (`withGrants`), when the fill path has them.
 * Interleavings: a second read of the title while that answer is on its way
 * joins the fetch and asks for its own chunk's grants alone (`fetching`); an
 * invalidation meanwhile leaves the answer uncached, as for any fetch; an
 * answer without a manifest (the router refused, did not answer, gives no
 * grants, has no such title, or sent one that does not parse) is followed by
 * `/meta`, whose answer decides, so those cases cost a round trip more than
 * before. When `withGrants` does not ask (it returns undefined), `/meta` and
 * `fetching` go in parallel, as they did before it.
 */
export interface MetaCacheOptions {
  ttlMs: number
  negativeTtlMs: number
  maxEntries: number
  /** the cluster's chunk size, until a manifest says otherwise: where `fetching` guesses a first read's chunk */
  chunkSize: number
}

/** Where the player read that needs a manifest starts: the file (a rendition's id, or the title's own) and the byte. */
export interface FirstRead {
  rid: string | undefined
  offset: number
}

const NOT_FOUND = Symbol('not found')
type Entry = Title | typeof NOT_FOUND

/**
 * Milliseconds on a clock that every thread of the process shares and that a
 * step of the wall clock (NTP) does not move: the expiry of a title the serve
 * threads hold is on it.
 */
export function monotonicNow(): number {
  return performance.timeOrigin + performance.now()
}

/** Told of every title cached (with when it expires, on `monotonicNow`) and every one dropped: the serve threads' copy. */
export interface MetaWatcher {
  cached(contentId: string, title: Title, expiresAt: number): void
  dropped(contentId: string): void
}

export class MetaCache {
  private readonly lru: LRUCache<string, Entry>
  private readonly inflight = new Map<string, Promise<Title>>()
  watcher: MetaWatcher | undefined
  /** told of every title fetched from upstream (the disk tier checks its chunk size against its write queue) */
  learned: ((title: Title) => void) | undefined
  /**
   * told as a player's read waits for a title's manifest, with the chunk that read
   * will probably start in: the fill path asks for that chunk's grants meanwhile
   * (grants-cache.ts `early`), so a cold title's first byte costs one round trip
   * to the router, not two in a row
   */
  fetching: ((contentId: string, rid: string | undefined, index: number) => void) | undefined
  /**
   * asked, when set, for the manifest a player's read waits for together with
   * the grants of the chunk it will probably start in (grants-cache.ts
   * `withManifest`): one round trip to the router. Resolves with the
   * manifest as sent (checked here), or undefined: then `/meta` is asked.
   * Returns undefined when it does not ask: `/meta` and `fetching` then, in parallel.
   */
  withGrants: ((contentId: string, rid: string | undefined, index: number) => Promise<unknown> | undefined) | undefined
  /** the chunk size of the last manifest fetched: an edge's upstream is one cluster */
  private chunkSize: number

  constructor(private readonly upstream: Upstream, private readonly metrics: EdgeMetrics, private readonly opts: MetaCacheOptions) {
    this.lru = new LRUCache<string, Entry>({ max: opts.maxEntries, ttl: Math.max(opts.ttlMs, opts.negativeTtlMs, 1) })
    this.chunkSize = opts.chunkSize
  }

  /** The cached title, or undefined (then call `fetch`); throws 404 for a cached miss. Allocation-free on a hit. */
  peek(contentId: string): Title | undefined {
    const e = this.lru.get(contentId)
    if (e === undefined) return undefined
    if (e === NOT_FOUND) {
      this.metrics.meta.inc({ result: 'negative' })
      throw new NotFoundError(`title ${contentId}`)
    }
    this.metrics.hot.meta.hit.n++
    return e
  }

  /** The title from upstream (one fetch for concurrent callers); `first`: a player's read waits for it (see `fetching`). */
  fetch(contentId: string, first?: FirstRead): Promise<Title> {
    const index = first === undefined ? -1 : Math.floor(first.offset / this.chunkSize)
    let p = this.inflight.get(contentId)
    if (p) {
      if (first !== undefined) this.fetching?.(contentId, first.rid, index)
      return p
    }
    this.metrics.meta.inc({ result: 'miss' })
    const combined = first !== undefined ? this.withGrants?.(contentId, first.rid, index) : undefined
    if (first !== undefined && combined === undefined) this.fetching?.(contentId, first.rid, index)
    const manifest = combined === undefined ? this.upstream.manifest(contentId) : combined.then(raw => {
      if (raw !== undefined) {
        try {
          return this.upstream.manifestOf(contentId, raw)
        } catch { /* counted as an unusable manifest: /meta's answer decides */ }
      }
      return this.upstream.manifest(contentId)
    })
    p = manifest.then(
      m => {
        const title = buildTitle(m)
        this.chunkSize = m.chunkSize
        this.learned?.(title)
        if (this.inflight.get(contentId) === p && this.opts.ttlMs > 0) {
          this.lru.set(contentId, title, { ttl: this.opts.ttlMs })
          this.watcher?.cached(contentId, title, monotonicNow() + this.opts.ttlMs)
        }
        return title
      },
      err => {
        if (err instanceof NotFoundError && this.inflight.get(contentId) === p && this.opts.negativeTtlMs > 0)
          this.lru.set(contentId, NOT_FOUND, { ttl: this.opts.negativeTtlMs })
        throw err
      },
    ).finally(() => { if (this.inflight.get(contentId) === p) this.inflight.delete(contentId) })
    this.inflight.set(contentId, p)
    return p
  }

  async get(contentId: string): Promise<Title> {
    return this.peek(contentId) ?? await this.fetch(contentId)
  }

  /** The cached title without counting a lookup (work a serve thread reported), or undefined. */
  cached(contentId: string): Title | undefined {
    const e = this.lru.get(contentId)
    return e === undefined || e === NOT_FOUND ? undefined : e
  }

  invalidate(contentId: string): void {
    this.lru.delete(contentId)
    this.inflight.delete(contentId)
    this.watcher?.dropped(contentId)
  }
}
