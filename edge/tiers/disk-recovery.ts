import { mkdir, readdir, rm, rmdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../lib/logger.js'
import type { DiskRow } from './disk-index.js'
import type { DiskTier } from './disk-tier.js'

/**
 * Start-up reconciliation of the disk tier, run before the edge reports ready.
 * After a kill -9 the disk can hold: temp files of writes in progress (deleted),
 * rows whose file never got renamed into place or is short (dropped), and files
 * without a row (deleted: a file is renamed only after its row is written, so
 * such a file is a removal that was cut short). Rows that pass are adopted in
 * access order, which rebuilds the policy's recency; if the policy's state was
 * saved (edge/tiers/disk-tier.ts savePolicyState), it is restored first, so the rows
 * it knew keep their saved place and frequency. Content is not re-hashed
 * here (that would read the whole disk); every read verifies its blocks' CRCs.
 */
export interface DiskRecoveryReport {
  tmp_removed: number
  rows_dropped: number
  orphans_removed: number
  loaded: number
  evicted: number
  /** 1 if the policy's saved state (queues, sketch) was restored, 0 if it started cold */
  policy_restored: number
}

export async function recoverDisk(tier: DiskTier, logger: Logger): Promise<DiskRecoveryReport> {
  const report: DiskRecoveryReport = { tmp_removed: 0, rows_dropped: 0, orphans_removed: 0, loaded: 0, evicted: 0, policy_restored: 0 }
  await mkdir(tier.chunksDir, { recursive: true })
  await mkdir(tier.tmpDir, { recursive: true })
  for (const f of await readdir(tier.tmpDir)) {
    await rm(join(tier.tmpDir, f), { force: true, recursive: true })
    report.tmp_removed++
  }

  const kept = new Set<string>()
  const valid: DiskRow[] = []
  for (const row of tier.index.all()) {
    const path = tier.path(row)
    const st = await stat(path).catch(() => undefined)
    if (!st || !st.isFile() || st.size !== row.size) {
      tier.index.delete(row.key)
      if (st) await rm(path, { force: true })
      report.rows_dropped++
      logger.warn({ key: row.key, size: st?.size, want: row.size }, 'edge disk recovery: row without a whole file, dropped')
      continue
    }
    kept.add(path)
    valid.push(row)
  }
  // the saved policy state places the rows it knew; rows written after it are inserted in access order
  report.policy_restored = tier.restorePolicyState(valid) ? 1 : 0
  for (const row of valid) {
    for (const k of tier.adopt(row)) {
      await tier.remove(k, k === row.key ? row : undefined)
      report.evicted++
    }
    if (tier.has(row.key)) report.loaded++
  }

  for (const dir of await readdir(tier.chunksDir)) {
    const dirPath = join(tier.chunksDir, dir)
    const files = await readdir(dirPath).catch(() => [] as string[])
    let left = files.length
    for (const f of files) {
      const path = join(dirPath, f)
      if (kept.has(path)) continue
      await rm(path, { force: true, recursive: true })
      report.orphans_removed++
      left--
    }
    if (left === 0) await rmdir(dirPath).catch(() => {})
  }
  return report
}
