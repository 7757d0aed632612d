/**
 * Content affinity: which members of a group (the edges of one site) own a
 * key (a title, a rendition, a run of chunks), by weighted rendezvous hashing
 * (highest random weight; Thaler & Ravishankar 1998, with the weighting of
 * Schindelhauer & Schomaker 2005, the rule Ceph's straw2 uses).
 *
 * Every member gets a score for the key, `weight / -ln(u)` where `u` in (0,1)
 * is a hash of (member, key); members ranked by score, highest first, are the
 * key's owners in order. Why this and not a ring:
 * - A member leaving moves only the keys it ranked first for; every other
 *   key's first owner is unchanged, and the next owner of a moved key is the
 *   one the list already named second (a player's failover and a peer fill
 *   agree on it).
 * - A member's share of first places is its weight over the sum of weights,
 *   with no virtual nodes to tune, so capacity weighting is exact.
 * - The whole order is there, so "the title's k owners" is the first k.
 *
 * The router (steering), the edge (whom to ask on a peer fill, what to
 * prefill) and the simulator (`reelcdn model`) all call this one function,
 * so they agree on who owns what. The hash is cyrb53 (53 bits, fast, no
 * crypto: nobody gains by choosing a title id that hashes badly, the ranking
 * only spreads load).
 */

export interface AffinityMember {
  id: string
  /** Relative capacity, > 0 (a member with weight 0 is never ranked above one with weight > 0). */
  weight: number
}

/** cyrb53: a 53-bit string hash (public domain, bryc). */
export function hash53(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

const TWO53 = 2 ** 53

/** The member's score for the key; higher wins. */
export function affinityScore(key: string, memberId: string, weight: number): number {
  if (!(weight > 0)) return 0
  const u = (hash53(memberId + '\u0000' + key) + 0.5) / TWO53 // in (0, 1), never 0 or 1
  return weight / -Math.log(u)
}

/**
 * The members in owner order for `key`: first is the key's owner, then its
 * next owners. Ties (equal scores: only equal weight and equal hash) break by
 * id so every caller gets the same order. Does not modify `members`.
 */
export function rankByAffinity<T extends AffinityMember>(key: string, members: readonly T[]): T[] {
  const scored = members.map(m => ({ m, s: affinityScore(key, m.id, m.weight) }))
  scored.sort((a, b) => (b.s - a.s) || (a.m.id < b.m.id ? -1 : a.m.id > b.m.id ? 1 : 0))
  return scored.map(x => x.m)
}

/** The first `count` owners of `key` (all members when count exceeds them). */
export function ownersOf<T extends AffinityMember>(key: string, members: readonly T[], count: number): T[] {
  return rankByAffinity(key, members).slice(0, Math.max(0, count))
}
