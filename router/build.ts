import type { Config } from '../lib/config/config.js'
import type { Logger } from '../lib/logger.js'
import { newRegistry, routerMetrics, type RouterProbes } from '../lib/metrics.js'
import { loadSecret } from '../lib/security/auth.js'
import { Cluster } from './cluster/cluster.js'
import { Manifests } from './cluster/manifests.js'
import { Repairer } from './repair/repair.js'
import { lastPass } from './cluster/cluster-view.js'

/**
 * The parts of a router that need no HTTP server: the cluster (ring, shard
 * pools, health), manifests and the repairer, wired to one metrics registry.
 * `reelcdn router repair` runs on these alone.
 */
export function buildCluster(config: Readonly<Config>, logger: Logger, env: NodeJS.ProcessEnv, registry = newRegistry('router', false),
  probes: Pick<RouterProbes, 'ingestBuffers' | 'relaySlabs'> = {}) {
  const shardToken = loadSecret(config.router.shardTokenFile, 'REELCDN_SHARD_TOKEN', env)
  let cluster: Cluster | undefined
  let repairer: Repairer | undefined
  const metrics = routerMetrics(registry, {
    shards: () => (cluster?.shards ?? []).map(s => {
      const h = cluster!.health.get(s.id)
      return { id: s.id, up: h.up, outstanding: s.outstanding, chunksOk: h.status?.chunks.ok ?? 0,
        chunksCorrupt: h.status?.chunks.corrupt ?? 0, storedBytes: h.status?.storedBytes ?? 0 }
    }),
    replicas: () => (cluster && repairer ? lastPass(cluster, repairer)?.report.remaining : undefined),
    refusedCopies: () => cluster?.refused.size ?? 0,
    ...probes,
  })
  cluster = new Cluster(config, metrics, logger, shardToken)
  const manifests = new Manifests(cluster, config.router.manifestTtlMs, metrics, logger)
  repairer = new Repairer(cluster, manifests, metrics, logger, config.router.repair, config.router.health.timeoutMs)
  return { cluster, manifests, repairer, metrics, hasShardToken: shardToken !== undefined, shardToken }
}

