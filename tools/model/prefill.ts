import type { Model } from './engine.js'

/**
 * Prefill before the run: each edge is given up to `share` of its capacity
 * in chunks, titles taken most popular first (title 0 first), chunk 0 first.
 *
 * - site-aware (issue 17): a chunk goes only to the first owner of its
 *   affinity key at the site, so a site's edges together hold up to E times
 *   as many distinct titles; an edge whose budget is spent skips its keys
 *   (their owner would not hold them live either).
 * - not site-aware (today's edge prefill): every edge fills the same top
 *   titles.
 *
 * Returns the chunks fetched for it (the origin egress before the run).
 */
export function prefill(m: Model, share: number, siteAware: boolean): number {
  const titles = m.dep.titles
  let fetched = 0
  m.dep.sites.forEach((site, s) => {
    const first = m.firstEdge(s)
    const left = site.edges.map(e => Math.floor(share * e.capacityChunks))
    let open = left.filter(x => x > 0).length
    for (let t = 0; t < titles.length && open > 0; t++) {
      for (let i = 0; i < titles[t]! && open > 0; i++) {
        const k = m.chunkKeyOf(t, i)
        if (siteAware) {
          const e = m.owners!.owner(s, m.keys.keyOf(t, i), 0)
          const j = e - first
          if (left[j]! <= 0) continue
          m.caches[e]!.insert(k, 1)
          fetched++
          if (--left[j]! === 0) open--
        } else {
          for (let j = 0; j < left.length; j++) {
            if (left[j]! <= 0) continue
            m.caches[first + j]!.insert(k, 1)
            fetched++
            if (--left[j]! === 0) open--
          }
        }
      }
    }
  })
  return fetched
}
