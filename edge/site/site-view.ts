import { ownersOf, rankByAffinity, type AffinityMember } from '../../lib/affinity.js'
import { isContentId } from '../../lib/ids.js'
import type { Logger } from '../../lib/logger.js'

/**
 * What this edge knows of its site (issue 17, docs/peer-fill.md): the edges
 * side by side with it, and how many of them own each hot title. Every owner
 * decision goes through lib/affinity.ts (`ownersOf`), the function the
 * router steers players with, so an edge asks for a chunk the edge the router
 * sends that title's players to, and prefills what it will be asked for.
 *
 * Theory of operation. The router answers every heartbeat (contract-17):
 *   { site: { id, members: [{ id, url, weight }] }, hot: [{ contentId, owners }] }
 * `members` are the site's healthy edges, this one included; `hot` lists the
 * titles with more than one owner, every other title has one. `update` takes
 * each reply whole (the last one wins: no merging, so an edge that left the
 * site is gone after one reply). A reply without `site` (a router from before
 * issue 17, or this edge declared none), or for another site than ours, or
 * one that does not name this edge among the members, empties the view: no
 * peer fill, prefill as an edge alone. Entries that do not parse are dropped
 * one by one (counted in the log line), never the whole reply.
 *
 * Between replies the view is fixed; a member that fails is the requester's
 * to notice (peer-source.ts holds it back), not the view's.
 */
export interface SiteMember extends AffinityMember {
  id: string
  url: string
  weight: number
}

const ID = /^[A-Za-z0-9._-]{1,64}$/
const MAX_MEMBERS = 1000
const MAX_HOT = 10_000

export class SiteView {
  /** the site's members, this edge included; empty: no site */
  members: readonly SiteMember[] = []
  /** owner counts of the hot titles (absent: 1) */
  private hot = new Map<string, number>()
  private warned = false

  /**
   * `site`: the site this edge declared (edge.site; empty: none). `self`: the
   * id this edge heartbeats under (known once it listens).
   */
  constructor(readonly site: string, private readonly self: () => string, private readonly logger?: Logger) {}

  get selfId(): string {
    return this.self()
  }

  /** Whether the view names a site of more than this edge. */
  get active(): boolean {
    return this.members.length > 1
  }

  /** A member by id. */
  member(id: string): SiteMember | undefined {
    return this.members.find(m => m.id === id)
  }

  /** How many edges of the site own `contentId`: its count in `hot`, else 1. */
  ownerCount(contentId: string): number {
    return this.hot.get(contentId) ?? 1
  }

  /** The title's owners at the site, first owner first (lib/affinity.ts `ownersOf`). */
  owners(contentId: string): SiteMember[] {
    return ownersOf(contentId, this.members, this.ownerCount(contentId))
  }

  /** Whether this edge is among the title's owners (always, without a site: an edge alone owns everything). */
  owns(contentId: string, count = this.ownerCount(contentId)): boolean {
    if (!this.active) return true
    const self = this.self()
    return ownersOf(contentId, this.members, count).some(m => m.id === self)
  }

  /**
   * The edge to ask for a chunk of `contentId`; undefined when this edge is its first owner or has no site.
   * A title's one owner. Of a hot title's owners: a later owner asks the first, so the site fetches a chunk
   * from the origin once however many edges hold it (its first copy, then peer fills: one hop, as the first
   * owner asks nobody); an edge that is not an owner asks the owner it ranks first (lib/affinity.ts again,
   * keyed by the title and this edge), so the siblings' requests spread over the owners, each asker keeping
   * to one (its requests for the title coalesce there).
   */
  peerFor(contentId: string): SiteMember | undefined {
    if (!this.active) return undefined
    const owners = this.owners(contentId)
    const self = this.self()
    const at = owners.findIndex(m => m.id === self)
    if (at === 0) return undefined
    if (at > 0) return owners[0]
    return owners.length > 1 ? rankByAffinity(`${contentId}\u0000${self}`, owners)[0] : owners[0]
  }

  /** Takes a heartbeat reply (parsed JSON, or undefined when the router answered none). */
  update(reply: unknown): void {
    const r = (typeof reply === 'object' && reply !== null ? reply : {}) as { site?: unknown; hot?: unknown }
    const dropped: string[] = []
    const members = this.site === '' ? [] : parseMembers(r.site, this.site, dropped)
    if (members.length > 0 && !members.some(m => m.id === this.self())) {
      dropped.push(`the members do not name this edge (${this.self()})`)
      members.length = 0
    }
    const hot = new Map<string, number>()
    if (members.length > 0 && Array.isArray(r.hot)) {
      for (const h of r.hot.slice(0, MAX_HOT) as { contentId?: unknown; owners?: unknown }[]) {
        const ok = typeof h?.contentId === 'string' && isContentId(h.contentId) && Number.isInteger(h.owners) && (h.owners as number) >= 1
        if (ok) hot.set(h.contentId as string, Math.min(h.owners as number, members.length))
        else dropped.push(`hot entry ${JSON.stringify(h).slice(0, 80)}`)
      }
    }
    this.members = members
    this.hot = hot
    // a malformed reply is the router's (an operator's) to fix, but said once, not every heartbeat
    if (dropped.length > 0 && !this.warned) {
      this.warned = true
      this.logger?.warn({ site: this.site, dropped: dropped.slice(0, 5), count: dropped.length },
        'the router\'s heartbeat reply has site entries this edge cannot use; they are ignored (logged once)')
    }
  }
}

function parseMembers(site: unknown, want: string, dropped: string[]): SiteMember[] {
  if (typeof site !== 'object' || site === null) return []
  const s = site as { id?: unknown; members?: unknown }
  if (s.id !== want) {
    dropped.push(`site ${JSON.stringify(s.id)}, this edge declared ${want}`)
    return []
  }
  if (!Array.isArray(s.members)) return []
  const out: SiteMember[] = []
  const seen = new Set<string>()
  for (const m of s.members.slice(0, MAX_MEMBERS) as { id?: unknown; url?: unknown; weight?: unknown }[]) {
    const id = m?.id
    const url = m?.url
    const w = m?.weight
    if (typeof id !== 'string' || !ID.test(id) || seen.has(id) || typeof url !== 'string' || !isHttpUrl(url)) {
      dropped.push(`member ${JSON.stringify(m).slice(0, 80)}`)
      continue
    }
    seen.add(id)
    // the contract: an edge's weight is its capacity, 1 when it reports none
    out.push({ id, url: url.replace(/\/+$/, ''), weight: typeof w === 'number' && Number.isFinite(w) && w > 0 ? w : 1 })
  }
  return out
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return u.protocol === 'http:' || u.protocol === 'https:'
  } catch {
    return false
  }
}
