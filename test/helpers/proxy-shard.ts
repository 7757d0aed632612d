import type { TestCluster, TestT } from '../system/harness.js'
import { shardProxy, type ShardFaults, type ShardProxy } from './shard-proxy.js'

/**
 * Puts a proxy where shard i was, in front of the shard restarted on a new
 * port: the router (and the fill grants it hands out) keep the old port, so
 * every request to that shard passes the proxy and its faults. Closed at the
 * test's teardown.
 */
export async function proxyShard(t: TestT, c: TestCluster, i: number, faults: ShardFaults = {}): Promise<ShardProxy> {
  const port = c.ports[i]!
  await c.stopShard(i)
  c.ports[i] = 0
  await c.startShard(i)
  const p = await shardProxy(port, c.ports[i]!, faults)
  t.teardown(() => p.close())
  return p
}
