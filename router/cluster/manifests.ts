import { LRUCache } from 'lru-cache'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { ConflictError, NotFoundError, UpstreamTimeoutError } from '../../lib/errors.js'
import { isAdaptive, parseManifest, type Manifest } from '../../lib/manifest.js'
import { manifestKey } from './keys.js'
import { NoReplicaError } from '../errors.js'
import type { Cluster } from './cluster.js'
import type { ShardClient } from './shard-client.js'

/**
 * Manifests: found on, published to and deleted from their owners.
 *
 * Lookup asks shards in read order until one has the manifest: its owners,
 * then up to `copies` more in ring order (where it sat before the last shard
 * was added, until the repairer moves it). Found manifests are cached for
 * `ttlMs`; titles are immutable, and the TTL bounds how long a DELETE takes to
 * reach every router. Concurrent lookups of one title share one fetch
 * (`inflight`), and a lookup never caches a miss. If no shard that could hold
 * it answered at all, the answer is 503, not a 404 that may be false.
 *
 * Publishing serializes on the first reachable owner (the primary): it is
 * written there with If-None-Match: *, and only then on the other owners. Two
 * ingests racing on one contentId meet at the primary: the loser sees 412,
 * compares whole-file digests (an adaptive title's: ladder versions), and
 * answers 200 (same bytes) or 409. A title
 * is visible from the moment the primary holds it, which is after every chunk
 * is stored.
 * @NOTE this is not consensus: if the primary is down, the next owner acts as
 * primary, and a race in that window can leave two manifests; the repairer
 * logs such a conflict and leaves it to an operator.
 */
export class Manifests {
  private readonly cache: LRUCache<string, Manifest>
  private readonly inflight = new Map<string, Promise<Manifest | undefined>>()

  constructor(private readonly cluster: Cluster, ttlMs: number, private readonly metrics: RouterMetrics, private readonly logger: Logger) {
    this.cache = new LRUCache<string, Manifest>({ max: 10000, ttl: Math.max(1, ttlMs), ttlAutopurge: false })
  }

  async get(contentId: string): Promise<Manifest> {
    const m = await this.find(contentId)
    if (!m) throw new NotFoundError(`title ${contentId}`)
    return m
  }

  find(contentId: string): Promise<Manifest | undefined> {
    const hit = this.cache.get(contentId)
    if (hit) {
      this.metrics.manifestLookups.inc({ result: 'cached' })
      return Promise.resolve(hit)
    }
    let p = this.inflight.get(contentId)
    if (!p) {
      p = this.fetch(contentId).finally(() => this.inflight.delete(contentId))
      this.inflight.set(contentId, p)
    }
    return p
  }

  /** Reads the manifest from shards, bypassing the cache. */
  async fetch(contentId: string): Promise<Manifest | undefined> {
    const key = manifestKey(contentId)
    const owners = new Set(this.cluster.ring.owners(key))
    const order = this.cluster.readOrder(key)
    let answered = 0
    let lastErr: Error | undefined
    let asked = 0
    let timeouts = 0
    for (const s of order) {
      // non-owners only as far as one rebalance step can have moved it
      if (!owners.has(s.id) && asked >= 2 * this.cluster.ring.copies) continue
      asked++
      try {
        const got = await s.getManifest(contentId)
        if (got) {
          const m = parseManifest(JSON.parse(got.body))
          answered++
          this.cache.set(contentId, m)
          this.metrics.manifestLookups.inc({ result: 'fetched' })
          return m
        }
        answered++
      } catch (err) {
        lastErr = err as Error
        if (err instanceof UpstreamTimeoutError) timeouts++
      }
    }
    this.metrics.manifestLookups.inc({ result: 'missing' })
    // every shard asked timed out: say so (504), rather than that none holds it (503)
    if (answered === 0 && asked > 0 && timeouts === asked) throw new UpstreamTimeoutError(`the manifest of ${contentId} (all ${asked} shards asked)`, { cause: lastErr })
    if (answered === 0) throw new NoReplicaError(`the manifest of ${contentId}`, { cause: lastErr })
    return undefined
  }

  /** Stores a new title's manifest on its owners. 'exists': the same bytes were published already. */
  async publish(m: Manifest, need: number): Promise<'created' | 'exists'> {
    const body = JSON.stringify(m)
    const owners = this.cluster.owners(manifestKey(m.contentId))
    let primary: ShardClient | undefined
    let lastErr: Error | undefined
    for (const s of owners) {
      try {
        const r = await s.putManifest(m.contentId, body)
        if (r === 'exists') return this.compareExisting(s, m)
        primary = s
        break
      } catch (err) {
        lastErr = err as Error
      }
    }
    if (!primary) throw new NoReplicaError(`a manifest write for ${m.contentId}`, { cause: lastErr })
    const rest = owners.filter(s => s !== primary)
    const results = await Promise.allSettled(rest.map(async s => {
      if (await s.putManifest(m.contentId, body) === 'exists') await this.compareExisting(s, m)
    }))
    const failed = results.filter(r => r.status === 'rejected') as PromiseRejectedResult[]
    if (1 + rest.length - failed.length < need) {
      // too few copies: take the title back down rather than publish it under-replicated
      await Promise.allSettled([primary, ...rest].map(s => s.deleteManifest(m.contentId)))
      throw failed[0]!.reason
    }
    for (const f of failed) this.logger.warn({ contentId: m.contentId, err: (f.reason as Error).message }, 'manifest copy not written; the repairer will add it')
    this.cache.set(m.contentId, m)
    return 'created'
  }

  private async compareExisting(s: ShardClient, m: Manifest): Promise<'exists'> {
    const have = await s.getManifest(m.contentId)
    if (!have) throw new ConflictError(`title ${m.contentId} was being published concurrently; try again`)
    const other = parseManifest(JSON.parse(have.body))
    // a single file is its bytes (its version may be random); an adaptive title is its ladder, named by its version
    if (isAdaptive(other) || isAdaptive(m)) {
      if (!isAdaptive(other) || !isAdaptive(m) || other.version !== m.version)
        throw new ConflictError(`title ${m.contentId} is published as ${isAdaptive(other) ? `a ladder of version ${other.version}` : 'a single file'}; another needs a DELETE first`)
    } else if (other.sha256 !== m.sha256)
      throw new ConflictError(`title ${m.contentId} is published with sha256 ${other.sha256}; a different body needs a DELETE first`)
    this.cache.set(m.contentId, other)
    return 'exists'
  }

  /**
   * Removes a manifest from every shard (not only owners: a copy left on a
   * former owner would let the repairer bring the title back). Owners must
   * answer; an unreachable non-owner is logged.
   */
  async remove(contentId: string): Promise<void> {
    this.cache.delete(contentId)
    const owners = new Set(this.cluster.ring.owners(manifestKey(contentId)))
    const results = await Promise.allSettled(this.cluster.shards.map(s => s.deleteManifest(contentId)))
    this.cache.delete(contentId)
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!
      if (r.status === 'fulfilled') continue
      const s = this.cluster.shards[i]!
      if (owners.has(s.id)) throw r.reason
      this.logger.warn({ contentId, shard: s.id, err: (r.reason as Error).message }, 'manifest delete did not reach a non-owner shard')
    }
  }

  forget(contentId: string): void {
    this.cache.delete(contentId)
  }
}
