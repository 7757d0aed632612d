import type { Tally } from '../../lib/metrics.js'
import type { ChunkRef } from '../title.js'

/**
 * Chunks fetched before any player asked for them (readahead, prefill) that no
 * player has read yet, so that the bytes of those that leave the edge unread
 * are counted as waste: reelcdn_edge_unread_ahead_bytes_total{by}. Readahead
 * raises the byte hit ratio (a chunk it brought is a hit when the player gets
 * there); this counter, with the origin offload, shows what that costs.
 *
 * Theory of operation. One entry per chunk key, owned by this ledger:
 *   - `started` (readahead started a fill) records the chunk, not yet cached;
 *     `committed` marks it cached when its fill commits. A prefill fill that no
 *     player joined is recorded at its commit, cached.
 *   - Any player read of the chunk (`read`: a RAM or disk hit, or a read
 *     joining its fill) drops the entry: those bytes were worth fetching.
 *   - A cached entry whose chunk has left the edge without being read is
 *     waste: its bytes go to the tally. `sweep` finds those (every second and
 *     before each scrape): in no tier, no disk write pending, no fill in
 *     flight. A player miss on a recorded chunk (`missed`) and a new fetch of
 *     it prove the same at once: the copy is gone, or it would be a hit.
 *   - An entry whose fill failed, or was purged in flight, never committed:
 *     it is dropped without counting (reelcdn_edge_fill_failures_total has it).
 *
 * Bounded: an entry lives only while its chunk is cached or in flight, plus at
 * most one sweep interval. The hot path adds one Map delete per chunk read.
 *
 * @NOTE a chunk that leaves and is fetched again by a player who joins the new
 * fill within one sweep interval is taken as read: waste can be undercounted by
 * that, never overcounted. The ledger lives in memory: a prefilled chunk still
 * on disk at a restart is forgotten, neither read nor waste.
 */
export type AheadKind = 'readahead' | 'prefill'

interface Entry {
  by: AheadKind
  bytes: number
  committed: boolean
}

export class FetchedAhead {
  private readonly entries = new Map<string, Entry>()

  /**
   * `alive(key)`: the chunk is in a tier, being written to disk, or in a fill
   * in flight. `unread`: the tallies per kind the waste is added to.
   */
  constructor(private readonly alive: (key: string) => boolean, private readonly unread: Record<AheadKind, Tally>) {}

  get size(): number {
    return this.entries.size
  }

  /** Readahead started a fill of `ref` (so it was neither cached nor in flight). */
  started(ref: ChunkRef): void {
    this.replace(ref.key, { by: 'readahead', bytes: ref.size, committed: false })
  }

  /** A fill committed its verified chunk: `prefill` when no player joined it (Coalescer's commit). */
  committed(ref: ChunkRef, prefill: boolean): void {
    if (prefill) return this.replace(ref.key, { by: 'prefill', bytes: ref.size, committed: true })
    const e = this.entries.get(ref.key)
    if (e !== undefined) e.committed = true
  }

  /** A player read the chunk (a hit, or a read joining its fill). */
  read(key: string): void {
    if (this.entries.size !== 0) this.entries.delete(key)
  }

  /** A player missed the chunk: a copy fetched ahead, if any, is gone unread. */
  missed(key: string): void {
    if (this.entries.size === 0) return
    const e = this.entries.get(key)
    if (e === undefined) return
    this.entries.delete(key)
    if (e.committed) this.unread[e.by].n += e.bytes
  }

  /** Counts the entries whose chunk has left the edge unread; drops those whose fill failed. */
  sweep(): void {
    for (const [key, e] of this.entries) {
      if (this.alive(key)) continue
      this.entries.delete(key)
      if (e.committed) this.unread[e.by].n += e.bytes
    }
  }

  /** A new fetch of `key`: an older copy fetched ahead is gone (a fetch starts only for a chunk neither cached nor in flight). */
  private replace(key: string, e: Entry): void {
    const old = this.entries.get(key)
    if (old?.committed) this.unread[old.by].n += old.bytes
    this.entries.set(key, e)
  }
}
