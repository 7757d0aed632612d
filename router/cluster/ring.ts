import HashRing from 'hashring'
import { LRUCache } from 'lru-cache'
import { ConfigError } from '../../lib/errors.js'

/**
 * Placement: a consistent-hash ring over the shards (hashring, ketama
 * compatible: MD5 points, 4 per hash). Every key maps to its `owners`, an
 * ordered list of `copies` distinct shards found by walking the ring
 * clockwise from the key's point. Shards are hashed by id, never by url, and
 * a shard's share of points follows its weight.
 *
 * Adding a shard inserts its points; for a key whose walk now meets the new
 * shard before its last owner, the new shard takes one place and the last old
 * owner drops out, and nothing else changes. So about weight/total of all
 * replicas move, which is the least any placement can move.
 *
 * Health plays no part here: a down shard keeps its points and stays an owner
 * until an operator removes it from the config (readers skip it meanwhile, and
 * the repairer re-creates copies only on owners).
 *
 * A ring never changes once built (a new cluster config builds a new one), so
 * a key's order is computed once and kept (`ORDERS_KEPT` keys): every read
 * asks for its chunk's order, and the walk (an MD5 of the key and a search of
 * the points) was 3–5 % of the router's busy time relaying small ranges.
 */
/**
 * keys whose order a ring keeps, the most recently read: a chunk each, its key and an array of every shard's id
 * (about 100 bytes and 8 per shard: 1.6 MiB with 3 shards, 9.5 MiB with 64; twice that while a reload holds two rings)
 */
const ORDERS_KEPT = 16_384

export interface RingMember {
  id: string
  weight: number
}

export class Ring {
  readonly copies: number
  readonly vnodes: number
  readonly ids: readonly string[]
  private readonly ring: HashRing
  private readonly orders = new LRUCache<string, readonly string[]>({ max: ORDERS_KEPT })

  constructor(members: readonly RingMember[], copies: number, vnodes: number) {
    if (copies > members.length)
      throw new ConfigError(`expected cluster.copies to be at most the number of shards (${members.length}), got ${copies}`)
    if (vnodes % 4 !== 0) throw new ConfigError(`expected cluster.vnodes to be a multiple of 4, got ${vnodes}`)
    this.copies = copies
    this.vnodes = vnodes
    this.ids = members.map(m => m.id)
    const servers: Record<string, { weight: number }> = {}
    for (const m of members) servers[m.id] = { weight: m.weight }
    // hashring makes `vnode count` hashes per weight-1 server and 4 points from each hash
    this.ring = new HashRing(servers, 'md5', { 'vnode count': vnodes / 4, compatibility: 'ketama', 'max cache size': 0 })
  }

  /** The `copies` shards that hold `key`, first owner first. */
  owners(key: string): string[] {
    // a kept order starts with them (a fill grant's chunk, read just before); a walk otherwise, not kept (a repair pass walks every chunk once)
    const o = this.orders.get(key)
    return o !== undefined ? o.slice(0, this.copies) : this.ring.range(key, this.copies)
  }

  /** Every shard in the key's ring order: its owners, then the shards that would own it next. */
  order(key: string): readonly string[] {
    let o = this.orders.get(key)
    if (o === undefined) {
      o = Object.freeze(this.ring.range(key, this.ids.length))
      this.orders.set(key, o)
    }
    return o
  }

  /** Ring points per shard, for /v1/cluster. */
  points(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [id, p] of Object.entries(this.ring.points(this.ids as string[]))) out[id] = p.length
    return out
  }
}
