import type { TierStats } from '../../lib/metrics.js'
import type { EvictionPolicy } from '../policy/policy.js'
import { dropChunk, escapeChunk, holdChunk } from './chunk-arena.js'

/**
 * The RAM tier: verified chunk Buffers by key, bounded in bytes by its policy.
 * A Buffer is shared with every reader and never mutated; an evicted Buffer
 * lives on only while a response still references it (bounded by
 * edge.sendStallTimeoutMs for a player that stopped reading).
 *
 * `staged` is memory held elsewhere: verified chunks waiting in the disk
 * tier's write queue. A lookup the map misses is answered from there (counted
 * as a miss by the policy, which does not hold them), so on an edge whose RAM
 * did not keep a chunk (or has no RAM tier) a chunk on its way to the disk is
 * served, not fetched again.
 *
 * The tier holds each chunk's memory while the chunk is in its map
 * (edge/tiers/chunk-arena.ts): a chunk evicted, refused or deleted is dropped,
 * and its slot is reused once its readers are done too. A chunk posted to the
 * serve threads escapes reuse: the threads' readers are not counted here.
 */
/** Told of every chunk that enters or leaves the tier (the serve threads' copy of the map). */
export interface RamWatcher {
  added(key: string, buf: Buffer): void
  removed(keys: string[]): void
}

export class RamTier {
  private readonly map = new Map<string, Buffer>()
  watcher: RamWatcher | undefined
  staged: ((key: string) => Buffer | undefined) | undefined

  constructor(private readonly policy: EvictionPolicy, private readonly onEvict: (n: number) => void) {}

  /** A lookup that counts for the policy (hit path: no allocation). */
  get(key: string): Buffer | undefined {
    const buf = this.map.get(key)
    if (buf !== undefined) {
      this.policy.hit(key)
      return buf
    }
    this.policy.miss(key)
    return this.staged?.(key)
  }

  has(key: string): boolean {
    return this.map.has(key)
  }

  /** A hit served elsewhere (a serve thread) counted for the policy; nothing if the chunk has left meanwhile. */
  touch(key: string): void {
    if (this.map.has(key)) this.policy.hit(key)
  }

  /** Offers a verified chunk; returns whether the policy admitted it. */
  insert(key: string, buf: Buffer): boolean {
    if (this.map.has(key)) return true
    const drop = this.policy.insert(key, buf.length)
    for (const k of drop) this.forget(k)
    if (drop.length) {
      this.onEvict(drop.length)
      this.watcher?.removed(drop)
    }
    if (!this.policy.has(key)) return false
    this.map.set(key, buf)
    holdChunk(buf)
    if (this.watcher) {
      escapeChunk(buf)
      this.watcher.added(key, buf)
    }
    return true
  }

  /**
   * A new byte bound (a config reload): the policy picks what goes; a Buffer
   * dropped here lives on while a response still sends it (its own hold), so
   * a player reading it does not notice, and its memory goes back to the
   * arena once that is done, as on any eviction.
   */
  resize(capacity: number): number {
    const drop = this.policy.resize(capacity)
    for (const k of drop) this.forget(k)
    if (drop.length) {
      this.onEvict(drop.length)
      this.watcher?.removed(drop)
    }
    return drop.length
  }

  /** What inserting `key` (`bytes` long) would evict now, `key` itself if refused (prefill's admission check). */
  victims(key: string, bytes: number): string[] {
    return this.policy.victims(key, bytes)
  }

  delete(key: string): void {
    if (!this.forget(key)) return
    this.policy.remove(key)
    this.watcher?.removed([key])
  }

  /** Leaves the map, dropping the tier's hold on the chunk's memory. */
  private forget(key: string): boolean {
    const buf = this.map.get(key)
    if (buf === undefined) return false
    this.map.delete(key)
    dropChunk(buf)
    return true
  }

  /** The keys of a title's chunks held (its renditions' included). */
  keysOf(contentId: string): string[] {
    const prefix = `${contentId}/`
    const out: string[] = []
    for (const key of this.map.keys()) if (key.startsWith(prefix)) out.push(key)
    return out
  }

  /** Drops every chunk of a title (its renditions' included); returns how many. */
  purge(contentId: string): number {
    const prefix = `${contentId}/`
    let n = 0
    for (const key of [...this.map.keys()]) if (key.startsWith(prefix)) { this.delete(key); n++ }
    return n
  }

  stats(): TierStats {
    return { bytes: this.policy.size, entries: this.map.size, capacity: this.policy.capacity }
  }
}
