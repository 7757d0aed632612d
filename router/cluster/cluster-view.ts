import type { Config } from '../../lib/config.js'
import type { Cluster } from './cluster.js'
import type { Repairer } from '../repair/repair.js'

/**
 * `GET /v1/cluster`: the shards as this router sees them (health after
 * hysteresis, weights, ring points, usage and chunk counts from the last
 * health check, requests in flight) and the last repair pass's counts.
 */
export function clusterView(cluster: Cluster, repairer: Repairer, config: Readonly<Config>) {
  const points = cluster.ring.points()
  const last = repairer.last
  return {
    copies: cluster.ring.copies,
    vnodes: cluster.ring.vnodes,
    chunkSize: config.cluster.chunkSize,
    shards: cluster.shards.map(s => {
      const h = cluster.health.get(s.id)
      return {
        id: s.id, url: s.spec.url, weight: s.spec.weight, points: points[s.id] ?? 0,
        health: { up: h.up, since: new Date(h.since).toISOString(), lastCheckAt: h.lastCheckAt && new Date(h.lastCheckAt).toISOString(), lastError: h.lastError },
        outstanding: s.outstanding,
        chunks: h.status ? h.status.chunks : null,
        usage: h.status ? { storedBytes: h.status.storedBytes, ...h.status.disk } : null,
      }
    }),
    replicas: last ? { ...last.remaining, scannedAt: new Date(last.startedAt).toISOString() } : null,
    repair: { running: repairer.isRunning, progress: repairer.isRunning ? repairer.progress : null, last: last ?? null },
  }
}
