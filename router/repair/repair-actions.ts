import { Readable } from 'node:stream'
import type { Logger } from '../../lib/logger.js'
import type { RouterMetrics } from '../../lib/metrics.js'
import { chunkName } from '../../lib/ids.js'
import { parseManifest, type Manifest } from '../../lib/manifest.js'
import { chunkKey, manifestKey, parseStorageId } from '../cluster/keys.js'
import { filesOf } from '../cluster/files.js'
import type { Cluster } from '../cluster/cluster.js'
import type { Manifests } from '../cluster/manifests.js'
import type { ChunkHoldings, ManifestHoldings } from './inventory.js'
import type { Throttle } from './throttle.js'
import type { RepairReport } from './repair-report.js'

/**
 * What the repairer does for one key, given every shard that holds it. The
 * rule is the same for chunks and manifests:
 *   1. each reachable owner without a good copy gets one, copied from any
 *      good holder (owners first) and verified by the receiving shard against
 *      the digest, so a copy is never worse than its source;
 *   2. copies on non-owners are deleted only when every owner — all `copies`
 *      of them, none unreachable — holds a good copy. Until then they are
 *      extra durability, and readers still find them.
 * A down (unreachable) owner is not copied to and its replica still counts:
 * the ring keeps its place until an operator removes it.
 *
 * "Good" for a chunk: state ok and the manifest's digest. A corrupt copy is
 * overwritten by the PUT (the shard accepts the right digest over a corrupt
 * row); a copy with other bytes under our name is deleted first.
 */
export interface PassContext {
  cluster: Cluster
  manifests: Manifests
  metrics: RouterMetrics
  logger: Logger
  throttle: Throttle
  report: RepairReport
  unreachable: Set<string>
  dryRun: boolean
  orphanGraceMs: number
  /**
   * contentId → the storage versions its manifests name, with their chunk
   * digests: a single-file title's version, or each rendition's of an
   * adaptive title (router/cluster/files.ts)
   */
  titles: Map<string, Map<string, readonly string[]>>
  /** storage id → chunk keys seen, to find chunks no shard holds */
  seen: Map<string, number>
}

export async function repairManifest(ctx: PassContext, mh: ManifestHoldings): Promise<void> {
  const { cluster, report } = ctx
  report.manifests.scanned++
  const owners = cluster.ring.owners(manifestKey(mh.contentId))
  const etags = new Set(mh.holders.map(h => h.etag))
  const bodies = new Map<string, Manifest>()
  for (const etag of etags) {
    const h = [...mh.holders].sort((a, b) => Number(!owners.includes(a.shard)) - Number(!owners.includes(b.shard))).find(x => x.etag === etag)!
    const got = await cluster.shard(h.shard).getManifest(mh.contentId)
    if (got) bodies.set(etag, parseManifest(JSON.parse(got.body)))
  }
  if (bodies.size === 0) return // deleted while we listed
  const versions = ctx.titles.get(mh.contentId) ?? new Map<string, readonly string[]>()
  for (const m of bodies.values()) for (const f of filesOf(m)) versions.set(f.version, f.chunks)
  ctx.titles.set(mh.contentId, versions)
  if (bodies.size > 1) {
    // two different manifests for one title: never pick one silently
    report.manifests.conflicts++
    ctx.logger.error({ contentId: mh.contentId, etags: [...etags] }, 'shards hold different manifests for one title; resolve by DELETE and re-ingest')
    return
  }
  const [etag, m] = [...bodies][0]!
  const body = JSON.stringify(m)
  const holders = new Set(mh.holders.map(h => h.shard))
  let good = 0
  let unknown = false
  for (const o of owners) {
    if (ctx.unreachable.has(o)) { unknown = true; continue }
    if (holders.has(o)) { good++; continue }
    report.manifests.underReplicated++
    if (ctx.dryRun) continue
    try {
      if (await cluster.shard(o).putManifest(mh.contentId, body) === 'exists') continue
      // @NOTE a DELETE racing this copy could be undone by it; re-check the source and take the copy back
      if (!(await cluster.shard(mh.holders.find(h => h.etag === etag)!.shard).getManifest(mh.contentId))) {
        await cluster.shard(o).deleteManifest(mh.contentId)
        return
      }
      good++
      report.manifests.copied++
      ctx.metrics.repairActions.inc({ action: 'manifest_copy' })
    } catch (err) {
      report.failures++
      ctx.logger.warn({ contentId: mh.contentId, shard: o, err: (err as Error).message }, 'manifest copy failed')
    }
  }
  const misplaced = mh.holders.filter(h => !owners.includes(h.shard))
  if (unknown || good < owners.length || ctx.dryRun) {
    report.remaining.misplacedManifests += misplaced.length
    return
  }
  for (const h of misplaced) {
    try {
      await cluster.shard(h.shard).deleteManifest(mh.contentId)
      report.manifests.misplacedDeleted++
      ctx.metrics.repairActions.inc({ action: 'manifest_delete_misplaced' })
    } catch (err) {
      report.failures++
      ctx.logger.warn({ contentId: mh.contentId, shard: h.shard, err: (err as Error).message }, 'misplaced manifest not deleted')
    }
  }
}

export async function repairChunk(ctx: PassContext, ch: ChunkHoldings): Promise<void> {
  const { cluster, report } = ctx
  report.chunks.scanned++
  const name = chunkName(ch.sid, ch.index)
  const id = parseStorageId(ch.sid)
  const want = id ? ctx.titles.get(id.contentId)?.get(id.version)?.[ch.index] : undefined
  if (!id || want === undefined) return orphan(ctx, ch, id?.contentId, id?.version)
  ctx.seen.set(ch.sid, (ctx.seen.get(ch.sid) ?? 0) + 1)
  const owners = cluster.ring.owners(chunkKey(ch.sid, ch.index))
  const good = ch.holders.filter(h => h.state === 'ok' && h.sha256 === want)
    .sort((a, b) => Number(!owners.includes(a.shard)) - Number(!owners.includes(b.shard)))
  if (good.length === 0) {
    report.chunks.lost++
    report.remaining.lost++
    ctx.logger.error({ chunk: name, holders: ch.holders.map(h => `${h.shard}:${h.state}`) }, 'no good copy of a chunk is left')
    return
  }
  const size = good[0]!.size
  let onOwners = 0
  let unknown = 0
  let under = false
  for (const o of owners) {
    if (ctx.unreachable.has(o)) { unknown++; continue }
    if (good.some(h => h.shard === o)) { onOwners++; continue }
    under = true
    if (ctx.dryRun) continue
    const had = ch.holders.find(h => h.shard === o)
    try {
      const target = cluster.shard(o)
      if (had && had.sha256 !== want) await target.deleteChunk(ch.sid, ch.index)
      await copyChunk(ctx, good.map(h => h.shard).filter(s => s !== o), o, ch.sid, ch.index, want, size)
      onOwners++
      if (had) report.chunks.replaced++
      else report.chunks.copied++
      ctx.metrics.repairActions.inc({ action: had ? 'replace' : 'copy' })
    } catch (err) {
      report.failures++
      ctx.logger.warn({ chunk: name, shard: o, err: (err as Error).message }, 'chunk copy failed')
    }
  }
  if (under) report.chunks.underReplicated++
  if (onOwners + unknown < owners.length) report.remaining.underReplicated++
  const misplaced = ch.holders.filter(h => !owners.includes(h.shard))
  if (unknown > 0 || onOwners < owners.length || ctx.dryRun) {
    report.remaining.misplaced += misplaced.length
    return
  }
  for (const h of misplaced) {
    try {
      await cluster.shard(h.shard).deleteChunk(ch.sid, ch.index)
      report.chunks.misplacedDeleted++
      ctx.metrics.repairActions.inc({ action: 'delete_misplaced' })
    } catch (err) {
      report.failures++
      report.remaining.misplaced++
      ctx.logger.warn({ chunk: name, shard: h.shard, err: (err as Error).message }, 'misplaced copy not deleted')
    }
  }
}

/** Streams a chunk from the first source that answers into `to`, through the throttle. */
async function copyChunk(ctx: PassContext, from: string[], to: string, sid: string, index: number, sha256: string, size: number): Promise<void> {
  let lastErr: unknown
  for (const src of from) {
    try {
      const body = await ctx.cluster.shard(src).openChunk(sid, index, sha256, 0, size - 1)
      try {
        await ctx.cluster.shard(to).putChunk(sid, index, sha256, size, Readable.from(ctx.throttle.pipe(body)))
      } finally {
        body.destroy()
      }
      ctx.report.bytesCopied += size
      ctx.metrics.repairBytes.inc(size)
      return
    } catch (err) {
      lastErr = err
    }
  }
  throw lastErr
}

/**
 * A chunk no manifest names: an interrupted or superseded ingest, a deleted
 * title, or a rendition of a ladder never published. Deleted once every copy
 * is older than the grace period, and
 * only after a fresh manifest lookup, with every owner of the manifest
 * reachable, confirms no title names it.
 */
async function orphan(ctx: PassContext, ch: ChunkHoldings, contentId: string | undefined, version: string | undefined): Promise<void> {
  ctx.report.chunks.orphans++
  const old = ch.holders.every(h => Date.now() - h.createdAt > ctx.orphanGraceMs)
  if (!old || ctx.dryRun) { ctx.report.remaining.orphans += ch.holders.length; return }
  if (contentId !== undefined) {
    const owners = ctx.cluster.ring.owners(manifestKey(contentId))
    if (owners.some(o => ctx.unreachable.has(o))) { ctx.report.remaining.orphans += ch.holders.length; return }
    try {
      const fresh = await ctx.manifests.fetch(contentId)
      // published meanwhile (a ladder's publish, a slow ingest's manifest): one of its files' chunks after all
      if (fresh && filesOf(fresh).some(f => f.version === version)) { ctx.report.remaining.orphans += ch.holders.length; return }
    } catch {
      ctx.report.remaining.orphans += ch.holders.length
      return
    }
  }
  for (const h of ch.holders) {
    try {
      await ctx.cluster.shard(h.shard).deleteChunk(ch.sid, ch.index)
      ctx.report.chunks.orphansDeleted++
      ctx.metrics.repairActions.inc({ action: 'delete_orphan' })
    } catch (err) {
      ctx.report.failures++
      ctx.report.remaining.orphans++
      ctx.logger.warn({ chunk: chunkName(ch.sid, ch.index), shard: h.shard, err: (err as Error).message }, 'orphan chunk not deleted')
    }
  }
}
