import type { Config } from '../../lib/config/config.js'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { ConfigError } from '../../lib/errors.js'
import { Ring } from './ring.js'
import { ShardClient, type ShardSpec } from './shard-client.js'
import { HealthMonitor } from './health.js'
import { RefusedCopies } from './refused-copies.js'

/**
 * The shards as one cluster: the ring says who owns a key, health says who is
 * worth asking first, and `outstanding` says who is least busy. Writes go to
 * `owners`; reads go in `readOrder`:
 *   1. healthy owners, least outstanding requests first (ties in ring order),
 *      so a hot chunk's reads spread over all its copies instead of piling
 *      on the first owner;
 *   2. healthy non-owners in ring order: after a shard is added, and until
 *      the repairer has moved them, copies sit on the shards that owned the
 *      key before, which come next in its ring order;
 *   3. shards marked down, owners first: a last resort before failing.
 * A copy its shard refused lately (refused-copies.ts) goes after all of these.
 */
/** a removed shard's client closes this long after the ring stops naming it (reads that chose it finish first) */
const RETIRE_MS = 30_000

export class Cluster {
  ring: Ring
  shards: readonly ShardClient[]
  readonly health: HealthMonitor
  readonly refused: RefusedCopies
  private readonly byId = new Map<string, ShardClient>()
  private readonly make: (s: ShardSpec) => ShardClient
  private readonly retired = new Set<ShardClient>()

  constructor(config: Readonly<Config>, metrics: RouterMetrics, logger: Logger, shardToken: string | undefined) {
    const c = config.cluster
    this.ring = new Ring(c.shards, c.copies, c.vnodes)
    const wq = config.router.writeQuorum
    if (wq > c.copies) throw new ConfigError(`expected router.writeQuorum to be at most cluster.copies (${c.copies}), got ${wq}`)
    const rc = config.router.refusedCopies
    this.refused = new RefusedCopies({ ttlMs: rc.ttlMs, max: rc.max, count: event => metrics.refusedCopies.inc({ event }) })
    // a copy stored by this router is good again, whatever its shard refused before
    this.make = s => new ShardClient(s, config.router.upstream, metrics, shardToken, key => this.refused.forget(s.id, key))
    this.shards = c.shards.map(this.make)
    for (const s of this.shards) this.byId.set(s.id, s)
    this.health = new HealthMonitor(this.shards, config.router.health, logger)
  }

  /**
   * A new shard list or new weights (a config reload, router/reload-table.ts):
   * `ring` is built first (it throws a ConfigError on a list it cannot place
   * `copies` on), then swapped in one assignment, so a placement asks either
   * the old ring or the new one, never a mix. A shard whose id and url stay
   * keeps its client, its connections and its health; a new one (or one at a
   * new url) gets a new client, up until checks say otherwise; a removed or
   * moved one's client closes RETIRE_MS later, so reads that picked it finish.
   * Copies the new ring places elsewhere are moved by the repairer's next pass.
   */
  reshard(specs: readonly ShardSpec[], ring: Ring): void {
    const next = specs.map(s => {
      const have = this.byId.get(s.id)
      return have !== undefined && have.spec.url === s.url && have.spec.fillUrl === s.fillUrl ? have : this.make(s)
    })
    const gone = this.shards.filter(s => !next.includes(s))
    this.ring = ring
    this.shards = next
    this.byId.clear()
    for (const s of next) this.byId.set(s.id, s)
    this.health.track(next)
    for (const s of gone) {
      this.retired.add(s)
      setTimeout(() => { if (this.retired.delete(s)) void s.close() }, RETIRE_MS).unref()
    }
  }

  shard(id: string): ShardClient {
    const s = this.byId.get(id)
    if (!s) throw new Error(`unknown shard ${id}`)
    return s
  }

  owners(key: string): ShardClient[] {
    return this.ring.owners(key).map(id => this.byId.get(id)!)
  }

  readOrder(key: string): ShardClient[] {
    const all = this.ring.order(key)
    const copies = this.ring.copies
    const healthyOwners: ShardClient[] = []
    const others: ShardClient[] = []
    const down: ShardClient[] = []
    for (let i = 0; i < all.length; i++) {
      const s = this.byId.get(all[i]!)!
      if (!this.health.isUp(s.id)) down.push(s)
      else if (i < copies) healthyOwners.push(s)
      else others.push(s)
    }
    // stable sort: equal loads keep ring order
    healthyOwners.sort((a, b) => a.outstanding - b.outstanding)
    return this.refused.order(healthyOwners.concat(others, down), key)
  }

  async close(): Promise<void> {
    await this.health.stop()
    await Promise.all([...this.shards, ...this.retired].map(s => s.close()))
    this.retired.clear()
  }
}
