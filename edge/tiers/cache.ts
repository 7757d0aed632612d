import type { Logger } from '../../lib/logger.js'
import type { EdgeMetrics } from '../../lib/metrics.js'
import type { DiskRow } from './disk-index.js'
import type { DiskTier } from './disk-tier.js'
import type { RamTier } from './ram-tier.js'
import { dropChunk } from './chunk-arena.js'
import type { ChunkRef } from '../title.js'
import { parseTierKey } from '../policy/policy.js'

/**
 * The two tiers together. A verified chunk from a fill goes to both: RAM at
 * once (the fill's Buffer itself, no copy) and disk through the disk tier's
 * write queue. While it waits in that queue its Buffer is served as a RAM hit
 * even if the RAM tier did not keep it (`RamTier.staged`), and it counts as
 * cached (`has`), so no fill starts for it. A disk hit is served from the
 * file and promoted to RAM in the background: at most `promotions`
 * whole-chunk reads at once, one per chunk, each verified block by block;
 * beyond that a promotion is skipped (the next hit tries again) rather than
 * queued, so promotions never pile up memory.
 */
export class ChunkCache {
  private readonly promoting = new Set<string>()

  constructor(
    readonly ram: RamTier,
    readonly disk: DiskTier,
    private readonly metrics: EdgeMetrics,
    private readonly logger: Logger,
    private readonly maxPromotions: number,
  ) {
    ram.staged = key => disk.readStaged(key)
  }

  /** In RAM, on disk, or waiting for the disk: `ram.get` or `disk.get` finds it now. */
  has(key: string): boolean {
    return this.ram.has(key) || this.disk.has(key) || this.disk.staged(key) !== undefined
  }

  /** `crcs`: the chunk's block list, when the fill checked every block against it (the disk tier keeps it instead of taking the CRCs again) */
  admit(ref: ChunkRef, buf: Buffer, crcs?: Buffer): void {
    this.ram.insert(ref.key, buf)
    this.disk.write(ref, buf, crcs)
  }

  /**
   * A prefilled chunk goes to the disk tier only: RAM holds what players are
   * reading now, and a chunk nobody has asked for yet should not push that
   * out. A RAM-only edge (no disk tier) puts it in RAM.
   */
  admitPrefill(ref: ChunkRef, buf: Buffer, crcs?: Buffer): void {
    if (this.disk.stats().capacity > 0) this.disk.write(ref, buf, crcs)
    else this.ram.insert(ref.key, buf)
  }

  /** The tier prefill fills. */
  get prefillTier(): 'ram' | 'disk' {
    return this.disk.stats().capacity > 0 ? 'disk' : 'ram'
  }

  promote(row: DiskRow): void {
    if (this.promoting.has(row.key) || this.ram.has(row.key) || row.size > this.ram.stats().capacity) return
    if (this.promoting.size >= this.maxPromotions) {
      this.metrics.promotions.inc({ result: 'skipped' })
      return
    }
    this.promoting.add(row.key)
    this.readIntoRam(row, () => this.disk.has(row.key)).then(
      got => this.metrics.promotions.inc({ result: got === 'dropped' ? 'failed' : 'ok' }),
      err => {
        this.metrics.promotions.inc({ result: 'failed' })
        this.logger.warn({ key: row.key, err: (err as Error).message }, 'promotion to RAM failed')
      },
    ).finally(() => this.promoting.delete(row.key))
  }

  /**
   * A disk chunk read whole, verified, into RAM if `keep()` still holds once
   * it is read: 'inserted', 'refused' (the RAM tier's policy), or 'dropped'
   * (it left the disk, or `keep()` said no). readAll's Buffer comes with the
   * reader's hold (a chunk arena slot), dropped here once the RAM tier has
   * its own, or back to the arena.
   */
  async readIntoRam(row: DiskRow, keep: () => boolean): Promise<'inserted' | 'refused' | 'dropped'> {
    const buf = await this.disk.readAll(row)
    if (buf === undefined) return 'dropped'
    try {
      if (!keep()) return 'dropped'
      return this.ram.insert(row.key, buf) ? 'inserted' : 'refused'
    } finally {
      dropChunk(buf)
    }
  }

  /**
   * Which chunks of each of a title's files the tiers hold (GET /v1/cache?contentId=): `file` is the
   * rendition id, or null for the title's own file. An admin's question: it walks the RAM tier's keys.
   */
  chunksOf(contentId: string): { file: string | null; ram: number[]; disk: number[] }[] {
    const files = new Map<string, { file: string | null; ram: number[]; disk: number[] }>()
    const add = (tier: 'ram' | 'disk', key: string) => {
      const p = parseTierKey(key)
      if (p === undefined) return
      const [name, index] = p
      if (name !== contentId && !name.startsWith(`${contentId}/`)) return
      let f = files.get(name)
      if (f === undefined) files.set(name, f = { file: name === contentId ? null : name.slice(contentId.length + 1), ram: [], disk: [] })
      f[tier].push(index)
    }
    for (const key of this.ram.keysOf(contentId)) add('ram', key)
    for (const key of this.disk.index.keysOf(contentId)) add('disk', key)
    const out = [...files.values()].sort((a, b) => (a.file ?? '').localeCompare(b.file ?? ''))
    for (const f of out) { f.ram.sort((a, b) => a - b); f.disk.sort((a, b) => a - b) }
    return out
  }

  /** Drops every cached chunk of a title (its renditions' included: their keys start with `contentId/` too) from both tiers. */
  async purge(contentId: string): Promise<{ ram: number; disk: number }> {
    const ram = this.ram.purge(contentId)
    const disk = await this.disk.purge(contentId)
    return { ram, disk }
  }
}
