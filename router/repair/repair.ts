import { hostname } from 'node:os'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import type { Config } from '../../lib/config/config.js'
import type { Cluster } from '../cluster/cluster.js'
import type { ShardClient } from '../cluster/shard-client.js'
import type { Manifests } from '../cluster/manifests.js'
import { chunkHoldings, manifestHoldings } from './inventory.js'
import { Throttle } from './throttle.js'
import { repairChunk, repairManifest, type PassContext } from './repair-actions.js'
import { emptyReport, type RepairProgress, type RepairReport } from './repair-report.js'
import { storageId } from '../cluster/keys.js'

/**
 * The repairer: makes every manifest and chunk hold exactly `copies` good
 * replicas on its current owners (repair-actions.ts has the per-key rule).
 *
 * A pass: probe every shard (unreachable ones are left out, and their
 * replicas counted as present); merge the manifest lists, repairing each
 * manifest and learning every title's chunk digests; then merge the chunk
 * lists (a title's chunks are those of each of its files: its own, or its
 * renditions'), repairing each chunk key with up to `concurrency` keys in flight and
 * copies throttled to `rateMBps` together; finally count chunks that some
 * manifest names but no shard holds (lost).
 *
 * One pass at a time per router: a pass asked for while one runs joins it.
 * `stop()` ends a pass between keys (every action is safe to stop after).
 * Routers do not coordinate, so run the background repairer on one of them
 * (router.repair.intervalMs 0 on the others); two passes at once only do
 * some work twice, every action being idempotent.
 * @NOTE the manifest phase keeps every title's chunk digests in memory (about
 * 70 bytes per chunk): fine to millions of chunks.
 */
export class Repairer {
  last: RepairReport | undefined
  /** what reports name as who ran the pass */
  ranBy = 'router'
  /** the machine it runs on, in reports for the operator (never shown without the admin token: whoRan) */
  ranOn = hostname()
  progress: RepairProgress | undefined
  private running: Promise<RepairReport> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private readonly throttle: Throttle

  constructor(
    private readonly cluster: Cluster,
    private readonly manifests: Manifests,
    private readonly metrics: RouterMetrics,
    private readonly logger: Logger,
    private readonly cfg: Config['router']['repair'],
    private readonly probeTimeoutMs: number,
  ) {
    this.throttle = new Throttle(cfg.rateMBps)
  }

  get isRunning(): boolean {
    return this.running !== undefined
  }

  start(): void {
    if (this.cfg.intervalMs === 0) return
    const tick = () => {
      this.timer = undefined
      void this.run().catch(() => {}).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.cfg.intervalMs).unref()
      })
    }
    this.timer = setTimeout(tick, this.cfg.intervalMs).unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.running?.catch(() => {})
  }

  run(opts: { dryRun?: boolean; onProgress?: (p: RepairProgress) => void } = {}): Promise<RepairReport> {
    this.running ??= this.pass(opts.dryRun ?? false, opts.onProgress).then(r => {
      this.metrics.repairPasses.inc({ result: 'done' })
      return r
    }, err => {
      this.metrics.repairPasses.inc({ result: 'failed' })
      this.logger.error({ err: (err as Error).message }, 'repair pass failed')
      throw err
    }).finally(() => { this.running = undefined })
    return this.running
  }

  /**
   * Leaves the report on every shard the pass reached: routers read it back
   * from the shards' status, so each one's /v1/cluster shows the newest pass,
   * whichever process ran it (origin/repair-record.ts).
   */
  private async leave(report: RepairReport, shards: readonly ShardClient[]): Promise<void> {
    const results = await Promise.allSettled(shards.map(s => s.putRepairReport(report)))
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${shards[i]!.id}: ${(r.reason as Error).message}`] : []))
    if (failed.length) this.logger.warn({ failed }, 'repair report not left on every shard: routers read it from the others')
  }

  private async pass(dryRun: boolean, onProgress?: (p: RepairProgress) => void): Promise<RepairReport> {
    const p: RepairProgress = { phase: 'probe', scanned: 0, estimatedChunks: 0, bytesCopied: 0, copied: 0, deleted: 0 }
    this.progress = p
    const unreachable = new Set<string>()
    // keys ≈ replicas / copies, but never fewer than one shard holds: after a shard is wiped, replicas / copies undercounts
    let replicaCount = 0
    let fullest = 0
    await Promise.all(this.cluster.shards.map(async s => {
      try {
        const st = await s.status(this.probeTimeoutMs)
        replicaCount += st.chunks.ok + st.chunks.corrupt
        fullest = Math.max(fullest, st.chunks.ok + st.chunks.corrupt)
      } catch (err) {
        unreachable.add(s.id)
        this.logger.warn({ shard: s.id, err: (err as Error).message }, 'repair: shard unreachable; its replicas are counted, not checked')
      }
    }))
    p.estimatedChunks = Math.max(fullest, Math.round(replicaCount / this.cluster.ring.copies))
    const report = emptyReport(dryRun, [...unreachable])
    const ctx: PassContext = {
      cluster: this.cluster, manifests: this.manifests, metrics: this.metrics, logger: this.logger, throttle: this.throttle,
      report, unreachable, dryRun, orphanGraceMs: this.cfg.orphanGraceMs, titles: new Map(), seen: new Map(),
    }
    const reachable = this.cluster.shards.filter(s => !unreachable.has(s.id))
    const tell = () => {
      p.bytesCopied = report.bytesCopied
      p.copied = report.chunks.copied + report.chunks.replaced + report.manifests.copied
      p.deleted = report.chunks.misplacedDeleted + report.chunks.orphansDeleted + report.manifests.misplacedDeleted
      onProgress?.(p)
    }

    p.phase = 'manifests'
    for await (const mh of manifestHoldings(reachable)) {
      if (this.stopped) throw new Error('repair pass stopped: the router is shutting down')
      await repairManifest(ctx, mh)
      p.scanned++
      tell()
    }

    p.phase = 'chunks'
    p.scanned = 0
    const inflight = new Set<Promise<void>>()
    for await (const ch of chunkHoldings(reachable)) {
      if (this.stopped) break
      while (inflight.size >= this.cfg.concurrency) await Promise.race(inflight)
      const t: Promise<void> = repairChunk(ctx, ch).catch(err => {
        report.failures++
        this.logger.warn({ sid: ch.sid, index: ch.index, err: (err as Error).message }, 'chunk repair failed')
      }).finally(() => {
        inflight.delete(t)
        p.scanned++
        tell()
      })
      inflight.add(t)
    }
    await Promise.all(inflight)
    if (this.stopped) throw new Error('repair pass stopped: the router is shutting down')

    // chunks a manifest names that no reachable shard listed at all
    for (const [contentId, versions] of ctx.titles) {
      for (const [version, chunks] of versions) {
        const missing = chunks.length - (ctx.seen.get(storageId(contentId, version)) ?? 0)
        if (missing <= 0) continue
        if (unreachable.size > 0) {
          report.remaining.underReplicated += missing
          continue
        }
        report.chunks.lost += missing
        report.remaining.lost += missing
        this.logger.error({ contentId, version, missing }, 'chunks of a title are held by no shard')
      }
    }
    report.finishedAt = Date.now()
    report.ranBy = this.ranBy
    report.ranOn = this.ranOn
    p.phase = 'done'
    tell()
    this.last = report
    await this.leave(report, reachable)
    this.logger.info({ report }, 'repair pass done')
    return report
  }
}
