import type { Config } from '../../lib/config/config.js'
import type { Cluster } from './cluster.js'
import type { Repairer } from '../repair/repair.js'
import { latestReport, whoRan, type PlacedReport, type RepairReport } from '../repair/repair-report.js'
import type { ShardHealth } from './health.js'

/**
 * `GET /v1/cluster`: the shards as this router sees them (health after
 * hysteresis, weights, ring points, usage and chunk counts from the last
 * health check, requests in flight) and the counts of the newest repair pass,
 * this router's or one another process (`reelcdn router repair`, another
 * router) left on the shards.
 *
 * The route is open (docs/security.md): who ran a pass shows as what ran it
 * (`router r1`, `reelcdn router repair`); the machine's hostname (`ranOn`)
 * only with `admin`, the admin token.
 */
export function clusterView(cluster: Cluster, repairer: Repairer, config: Readonly<Config>, o: { admin: boolean } = { admin: false }) {
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
    // scannedAt on this router's clock: the pass's own duration back from when it ended here
    replicas: last ? { ...last.report.remaining, scannedAt: new Date(last.at - (last.report.finishedAt! - last.report.startedAt)).toISOString(),
      ...shown(last.report, o.admin), dryRun: last.report.dryRun } : null,
    repair: { running: repairer.isRunning, progress: repairer.isRunning ? repairer.progress : null, last: last ? { ...last.report, ...shown(last.report, o.admin) } : null },
  }
}

/** whoRan's fields, `ranOn` left out (undefined: not in the JSON) unless `admin`. */
function shown(r: RepairReport, admin: boolean): { ranBy: string | null; ranOn?: string | null } {
  const who = whoRan(r)
  return admin ? who : { ranBy: who.ranBy, ranOn: undefined }
}

/**
 * The newest pass known, on this router's clock: its own (its finishedAt is
 * this clock), or one any process left on the shards, placed by the age each
 * shard gives it (as of their last health check). A shard from before ages
 * gives none: its report counts as ending at its finishedAt, never later than
 * it was read.
 */
export function lastPass(cluster: Cluster, repairer: Repairer): PlacedReport | undefined {
  const own = repairer.last
  return latestReport(own?.finishedAt != null ? { report: own, at: own.finishedAt } : undefined,
    ...cluster.shards.map(s => placed(cluster.health.get(s.id))))
}

function placed(h: ShardHealth): PlacedReport | undefined {
  const report = h.status?.lastRepair
  if (!report || h.statusAt === null || typeof report.finishedAt !== 'number') return undefined
  const age = h.status?.lastRepairAgeMs
  return { report, at: typeof age === 'number' ? h.statusAt - age : Math.min(report.finishedAt, h.statusAt) }
}
