/**
 * Copies a shard has refused to serve, remembered so reads stop paying a
 * round trip for them: a copy its shard reports corrupt (500
 * CDN_ERR_CORRUPT), does not hold (404), holds with other bytes (412), or
 * whose bytes or block list failed our checks. A remembered copy is asked
 * last, after every other copy (never dropped: if the rest fail it is still
 * the last chance, and a repair may have fixed it meanwhile).
 *
 * "Until a repair": a chunk PUT this router makes to that shard (repair or
 * ingest) that succeeds forgets the copy at once, and so does a read from it
 * that succeeds. A repair made by another process — `reelcdn router repair`,
 * another router — is not seen here, so each entry also expires after
 * `ttlMs`: the copy is then asked again once, and remembered again if still
 * refused. Memory is bounded: at most `max` entries, the least recently
 * refused dropped first (an entry is a shard id and a chunk key, ~100 bytes).
 */
export interface RefusedCopiesOptions {
  ttlMs: number
  max: number
  /** what `avoided`, `noted` and `cleared` are counted with */
  count?: (event: 'noted' | 'avoided' | 'cleared') => void
  now?: () => number
}

export class RefusedCopies {
  // insertion order is refusal order: the first key is the one to drop when full
  private readonly until = new Map<string, number>()
  private readonly now: () => number

  constructor(private readonly o: RefusedCopiesOptions) {
    if (!(o.max >= 1)) throw new Error(`expected router.refusedCopies.max to be a positive integer, got ${o.max}`)
    this.now = o.now ?? Date.now
  }

  get size(): number {
    return this.until.size
  }

  note(shard: string, key: string): void {
    const k = `${shard} ${key}`
    const fresh = !this.until.delete(k)
    this.until.set(k, this.now() + this.o.ttlMs)
    if (this.until.size > this.o.max) this.until.delete(this.until.keys().next().value!)
    if (fresh) this.o.count?.('noted')
  }

  has(shard: string, key: string): boolean {
    const k = `${shard} ${key}`
    const t = this.until.get(k)
    if (t === undefined) return false
    if (t > this.now()) return true
    this.until.delete(k)
    return false
  }

  /** The copy is good again (stored or read): forget its refusal. */
  forget(shard: string, key: string): void {
    if (this.until.delete(`${shard} ${key}`)) this.o.count?.('cleared')
  }

  /** `order` with the copies of `key` refused lately moved to its end, in their order. */
  order<S extends { id: string }>(order: S[], key: string): S[] {
    if (this.until.size === 0) return order
    const good: S[] = []
    const refused: S[] = []
    for (const s of order) (this.has(s.id, key) ? refused : good).push(s)
    if (refused.length === 0) return order
    for (let i = 0; i < refused.length; i++) this.o.count?.('avoided')
    return good.concat(refused)
  }
}
