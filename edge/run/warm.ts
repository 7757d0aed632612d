import type { Logger } from '../../lib/logger.js'
import type { DiskRow } from '../tiers/disk-index.js'
import type { ChunkCache } from '../tiers/cache.js'

/**
 * After an upgrade the new worker's RAM tier is empty while its disk tier is
 * whole (edge/run/supervisor.ts). This reads the most recently used disk
 * chunks back into RAM, as many as the RAM tier holds, one at a time (each
 * verified block by block, as a promotion is), so players' own disk reads keep
 * the disk. They go in oldest first, so the most recent end up the warmest.
 * A chunk a player already brought to RAM, or one that left the disk, is
 * skipped; `signal` stops it (the edge is closing).
 */
export async function warmRamFromDisk(cache: ChunkCache, logger: Logger, signal: AbortSignal): Promise<{ chunks: number; bytes: number }> {
  const room = cache.ram.stats().capacity
  const rows = cache.disk.index.all().sort((a, b) => b.lastAccess - a.lastAccess)
  const pick: DiskRow[] = []
  let bytes = 0
  for (const r of rows) {
    if (bytes + r.size > room) break
    pick.push(r)
    bytes += r.size
  }
  let chunks = 0
  let warmed = 0
  for (const r of pick.reverse()) {
    if (signal.aborted) break
    if (cache.ram.has(r.key) || !cache.disk.has(r.key)) continue
    if (await cache.readIntoRam(r, () => !signal.aborted).catch(() => 'dropped') === 'inserted') { chunks++; warmed += r.size }
  }
  logger.info({ chunks, bytes: warmed }, 'RAM tier warmed from the disk tier')
  return { chunks, bytes: warmed }
}
