import { rankByAffinity } from '../../lib/affinity.js'
import type { Deployment } from './deployment.js'

/**
 * Who owns what, computed once per key per site (never per request): the
 * site's edges in `rankByAffinity` order (lib/affinity.ts, the function the
 * router and the edges call) for every affinity key, stored as one byte per
 * edge in a typed array. A request then walks at most E bytes.
 *
 * The affinity key is the title (`t<n>`, the contentId, as the router steers
 * today) or, with `rangeChunks` R > 0, a run of R chunks of it (`t<n>/r<k>`
 * for chunks kR..kR+R-1), so the ranges of one hot title land on different
 * edges. Keys are integers: a title's ranges are numbered from `base[title]`.
 */
export class AffinityKeys {
  readonly base: Int32Array
  readonly count: number

  constructor(readonly titles: Int32Array, readonly rangeChunks: number) {
    this.base = new Int32Array(titles.length + 1)
    for (let t = 0; t < titles.length; t++) this.base[t + 1] = this.base[t]! + (rangeChunks > 0 ? Math.ceil(titles[t]! / rangeChunks) : 1)
    this.count = this.base[titles.length]!
  }

  keyOf(title: number, index: number): number {
    return this.base[title]! + (this.rangeChunks > 0 ? Math.floor(index / this.rangeChunks) : 0)
  }

  /** The string the affinity hash sees. */
  name(key: number): string {
    // binary search for the title whose ranges hold `key`
    let lo = 0
    let hi = this.titles.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.base[mid]! <= key) lo = mid
      else hi = mid - 1
    }
    return this.rangeChunks > 0 ? `t${lo}/r${key - this.base[lo]!}` : `t${lo}`
  }
}

export class OwnerTable {
  /** per site: keys × edges-of-the-site local edge indices, owner order */
  private readonly ranks: Uint8Array[]
  /** the global index of each site's first edge */
  readonly edgeBase: Int32Array

  constructor(readonly dep: Deployment, readonly keys: AffinityKeys, onKey?: (done: number) => void) {
    this.edgeBase = new Int32Array(dep.sites.length + 1)
    dep.sites.forEach((s, i) => { this.edgeBase[i + 1] = this.edgeBase[i]! + s.edges.length })
    let done = 0
    this.ranks = dep.sites.map(site => {
      const members = site.edges.map((e, i) => ({ id: e.id, weight: e.weight, i }))
      const n = members.length
      const out = new Uint8Array(keys.count * n)
      for (let k = 0; k < keys.count; k++) {
        const order = rankByAffinity(keys.name(k), members)
        for (let j = 0; j < n; j++) out[k * n + j] = order[j]!.i
        if ((++done & 0xfff) === 0) onKey?.(done)
      }
      return out
    })
  }

  edges(site: number): number {
    return this.edgeBase[site + 1]! - this.edgeBase[site]!
  }

  /** The global index of the key's j-th owner at the site. */
  owner(site: number, key: number, j: number): number {
    const n = this.edges(site)
    return this.edgeBase[site]! + this.ranks[site]![key * n + j]!
  }

  /** The key's first owner among the live edges, or -1 when the site has none. */
  firstAlive(site: number, key: number, alive: Uint8Array): number {
    const n = this.edges(site)
    for (let j = 0; j < n; j++) {
      const e = this.owner(site, key, j)
      if (alive[e]) return e
    }
    return -1
  }
}
