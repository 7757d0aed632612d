/**
 * What prefill should fetch, best first. A chunk's expected value is its
 * title's recent plays times the share of that title's reads landing at the
 * chunk's position (from the router's per-slice demand, or a prior that
 * favours openings when the title has none yet), spread over the chunks of that
 * slice. Sorting by it puts the openings of many titles before the endings of a
 * few. Chunks already cached are skipped; the plan stops at the byte budget.
 */
export const SLICES = 20

export interface TitleDemand {
  contentId: string
  plays: number
  /** share of reads per slice, summing to 1; null when unknown */
  positions: number[] | null
  chunkSize: number
  size: number
}

export interface PlannedChunk {
  contentId: string
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

export function chunkCount(t: Pick<TitleDemand, 'size' | 'chunkSize'>): number {
  return t.size === 0 ? 0 : Math.ceil(t.size / t.chunkSize)
}

export function planPrefill(titles: TitleDemand[], cached: (contentId: string, index: number) => boolean, budgetBytes: number): PlannedChunk[] {
  const all: PlannedChunk[] = []
  for (const t of titles) {
    const n = chunkCount(t)
    if (n === 0 || t.plays <= 0) continue
    const share = t.positions ?? OPENING_PRIOR
    // chunks per slice, to spread a slice's share over its chunks
    const perSlice = new Array<number>(SLICES).fill(0)
    for (let i = 0; i < n; i++) perSlice[Math.min(SLICES - 1, Math.floor((i / n) * SLICES))]!++
    for (let i = 0; i < n; i++) {
      if (cached(t.contentId, i)) continue
      const s = Math.min(SLICES - 1, Math.floor((i / n) * SLICES))
      const value = (t.plays * share[s]!) / perSlice[s]!
      if (value > 0) all.push({ contentId: t.contentId, index: i, bytes: Math.min(t.chunkSize, t.size - i * t.chunkSize), value })
    }
  }
  // ties: earlier chunks first, so equal titles all get their openings before anyone's second chunk
  all.sort((a, b) => b.value - a.value || a.index - b.index || (a.contentId < b.contentId ? -1 : a.contentId > b.contentId ? 1 : 0))
  const plan: PlannedChunk[] = []
  let bytes = 0
  for (const c of all) {
    if (bytes + c.bytes > budgetBytes) continue
    plan.push(c)
    bytes += c.bytes
  }
  return plan
}

/** The expected value planPrefill gives chunk `index` of `t` (0 for a title without plays): prefill's admission check compares victims by it. */
export function chunkValue(t: TitleDemand, index: number): number {
  const n = chunkCount(t)
  if (index < 0 || index >= n || t.plays <= 0) return 0
  const share = t.positions ?? OPENING_PRIOR
  const slice = (i: number) => Math.min(SLICES - 1, Math.floor((i / n) * SLICES))
  const s = slice(index)
  // chunks in slice s: the i with slice(i) === s, a contiguous run
  let lo = index
  while (lo > 0 && slice(lo - 1) === s) lo--
  let hi = index
  while (hi < n - 1 && slice(hi + 1) === s) hi++
  return (t.plays * share[s]!) / (hi - lo + 1)
}
