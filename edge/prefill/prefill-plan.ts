/**
 * What prefill should fetch, best first. A chunk's expected value is its
 * title's recent plays times the share of that title's reads landing at the
 * chunk's position (from the router's per-slice demand, or a prior that
 * favours openings when the title has none yet), spread over the chunks of that
 * slice. Sorting by it puts the openings of many titles before the endings of a
 * few. Chunks already cached are skipped; the plan stops at the byte budget.
 *
 * An adaptive title (issue 15) is its renditions: each rendition's chunks are
 * valued the same way within its own file, weighted by the rendition's share
 * of the title's reads (`files`), so the rungs viewers watch are planned and
 * the ones nobody watches are not. A rendition's chunk is worth what a single
 * file's at the same place would be, times that share, so titles compare as
 * before, single file or ladder.
 */
export const SLICES = 20

/** A rendition of an adaptive title, as prefill sees it. */
export interface FileDemand {
  rid: string
  /** share of the title's chunk reads on this rendition (a title's shares sum to 1; 0: nobody watches it here) */
  share: number
  /** share of the rendition's reads per slice of its file, summing to 1; null when unknown */
  positions: number[] | null
  size: number
}

export interface TitleDemand {
  contentId: string
  plays: number
  /** share of reads per slice, summing to 1; null when unknown */
  positions: number[] | null
  chunkSize: number
  size: number
  /** an adaptive title's renditions (its own file is then empty) */
  files?: FileDemand[] | undefined
}

export interface PlannedChunk {
  contentId: string
  /** the rendition, for an adaptive title */
  rid?: string
  index: number
  bytes: number
  value: number
}

/** Openings first: each slice of a title 0.7 times as likely to be read as the one before it. */
export const OPENING_PRIOR: number[] = (() => {
  const raw = Array.from({ length: SLICES }, (_, i) => 0.7 ** i)
  const sum = raw.reduce((a, b) => a + b, 0)
  return raw.map(x => x / sum)
})()

export function chunkCount(t: { size: number; chunkSize: number }): number {
  return t.size === 0 ? 0 : Math.ceil(t.size / t.chunkSize)
}

/**
 * Each rendition's share of a title's reads, from the reads counted per
 * rendition (the router's trending). Without any count (only edges from before
 * issue 15 report the title), the reads are assumed spread evenly over the
 * renditions: a prior, replaced as soon as viewers are counted.
 */
export function renditionShares(rids: readonly string[], reads: ReadonlyMap<string, number>): Map<string, number> {
  let sum = 0
  for (const r of rids) sum += reads.get(r) ?? 0
  return new Map(rids.map(r => [r, sum > 0 ? (reads.get(r) ?? 0) / sum : 1 / rids.length]))
}

/** One file's chunks and their values: `weight` plays spread by `positions` over slices, and each slice's over its chunks. */
function fileChunks(out: PlannedChunk[], contentId: string, rid: string | undefined, weight: number, positions: number[] | null,
  size: number, chunkSize: number, cached: (contentId: string, index: number, rid?: string) => boolean): void {
  const n = chunkCount({ size, chunkSize })
  if (n === 0 || weight <= 0) return
  const share = positions ?? OPENING_PRIOR
  // chunks per slice, to spread a slice's share over its chunks
  const perSlice = new Array<number>(SLICES).fill(0)
  for (let i = 0; i < n; i++) perSlice[Math.min(SLICES - 1, Math.floor((i / n) * SLICES))]!++
  for (let i = 0; i < n; i++) {
    if (cached(contentId, i, rid)) continue
    const s = Math.min(SLICES - 1, Math.floor((i / n) * SLICES))
    const value = (weight * share[s]!) / perSlice[s]!
    if (value <= 0) continue
    const c: PlannedChunk = { contentId, index: i, bytes: Math.min(chunkSize, size - i * chunkSize), value }
    if (rid !== undefined) c.rid = rid
    out.push(c)
  }
}

export function planPrefill(titles: TitleDemand[], cached: (contentId: string, index: number, rid?: string) => boolean, budgetBytes: number): PlannedChunk[] {
  const all: PlannedChunk[] = []
  for (const t of titles) {
    if (t.plays <= 0) continue
    if (t.files === undefined) fileChunks(all, t.contentId, undefined, t.plays, t.positions, t.size, t.chunkSize, cached)
    else for (const f of t.files) fileChunks(all, t.contentId, f.rid, t.plays * f.share, f.positions, f.size, t.chunkSize, cached)
  }
  // ties: earlier chunks first, so equal titles all get their openings before anyone's second chunk
  all.sort((a, b) => b.value - a.value || a.index - b.index || (a.contentId < b.contentId ? -1 : a.contentId > b.contentId ? 1 : 0)
    || ((a.rid ?? '') < (b.rid ?? '') ? -1 : (a.rid ?? '') > (b.rid ?? '') ? 1 : 0))
  const plan: PlannedChunk[] = []
  let bytes = 0
  for (const c of all) {
    if (bytes + c.bytes > budgetBytes) continue
    plan.push(c)
    bytes += c.bytes
  }
  return plan
}

/**
 * The expected value planPrefill gives chunk `index` of `t` (of its rendition
 * `rid`, for an adaptive title); 0 for a title without plays or a chunk it has
 * not. Prefill's admission check compares victims by it.
 */
export function chunkValue(t: TitleDemand, index: number, rid?: string): number {
  let weight = t.plays
  let positions = t.positions
  let size = t.size
  if (rid !== undefined || t.files !== undefined) {
    const f = t.files?.find(x => x.rid === rid)
    if (f === undefined) return 0
    weight *= f.share
    positions = f.positions
    size = f.size
  }
  const n = chunkCount({ size, chunkSize: t.chunkSize })
  if (index < 0 || index >= n || weight <= 0) return 0
  const share = positions ?? OPENING_PRIOR
  const slice = (i: number) => Math.min(SLICES - 1, Math.floor((i / n) * SLICES))
  const s = slice(index)
  // chunks in slice s: the i with slice(i) === s, a contiguous run
  let lo = index
  while (lo > 0 && slice(lo - 1) === s) lo--
  let hi = index
  while (hi < n - 1 && slice(hi + 1) === s) hi++
  return (weight * share[s]!) / (hi - lo + 1)
}
