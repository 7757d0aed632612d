import type { Config } from '../../lib/config.js'
import type { Cluster } from './cluster.js'
import type { Repairer } from '../repair/repair.js'
import { latestReport, type RepairReport } from '../repair/repair-report.js'

/**
 * `GET /v1/cluster`: the shards as this router sees them (health after
 * hysteresis, weights, ring points, usage and chunk counts from the last
 * health check, requests in flight) and the counts of the newest repair pass,
 * this router's or one another process (`reelcdn router repair`, another
 * router) left on the shards.
 */
export function clusterView(cluster: Cluster, repairer: Repairer, config: Readonly<Config>) {
  const points = cluster.ring.points()
  const last = lastPass(cluster, repairer)
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
    replicas: last ? { ...last.remaining, scannedAt: new Date(last.startedAt).toISOString(), ranBy: last.ranBy ?? null, dryRun: last.dryRun } : null,
    repair: { running: repairer.isRunning, progress: repairer.isRunning ? repairer.progress : null, last: last ?? null },
  }
}

/** The newest pass known: this router's own, or one any process left on the shards (as of their last health check). */
export function lastPass(cluster: Cluster, repairer: Repairer): RepairReport | undefined {
  return latestReport(repairer.last, ...cluster.shards.map(s => cluster.health.get(s.id).status?.lastRepair))
}
