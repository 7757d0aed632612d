import { BlockList, isIPv4 } from 'node:net'
import { z } from 'zod'
import { BadRequestError } from '../../lib/errors.js'
import { HEARTBEAT_REFUSALS, type HeartbeatRefusal } from '../../lib/metrics.js'
import { parseCidr } from '../../lib/security/tokens.js'

/**
 * Which edges exist and how they are doing, learnt from their heartbeats. An
 * edge that has not sent one for `silenceMs` drops out of steering at once (it
 * is not deleted, so a late heartbeat brings it straight back). The clock is
 * injected so tests drive it.
 *
 * Ranking for a client: edges that serve the client's network (or its explicit
 * region) first, then the rest of the healthy edges; within each group the
 * less-loaded first. Unhealthy or silent edges are never offered.
 *
 * Several routers: an edge heartbeats to one of them (through the load
 * balancer, any). Each router serves the heartbeats it received itself
 * (`own`, with their age) to its peers, which keep the most recent heartbeat
 * per edge id (`mergePeer`, router/playback/edge-peers.ts). Ages, not times, cross
 * between routers, so their clocks need not agree; a peer's heartbeat is
 * never served on (no echo).
 *
 * Issue 17 (docs/steering.md): a heartbeat may name the edge's site and its
 * cache capacity (its affinity weight); absurd values are refused naming the
 * field (HeartbeatRefusedError, counted by field), and `siteMembers` is what
 * the heartbeat's answer lists for the sender's site.
 */
/** The most cache an edge may declare (1 PiB): more is a unit mistake, not an appliance. */
export const MAX_CAPACITY_BYTES = 1024 ** 5

export const heartbeatSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'an edge id is 1-64 characters of [A-Za-z0-9._-]'),
  url: z.string().url().refine(u => /^https?:\/\//.test(u), 'an http(s) URL'),
  networks: z.array(z.string().refine(s => { try { parseCidr(s); return true } catch { return false } }, 'a CIDR such as 192.0.2.0/24')).max(1000),
  regions: z.array(z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 code')).max(300).default([]),
  healthy: z.boolean(),
  /** 0 = idle, 1 = saturated */
  load: z.number().min(0, 'from 0 (idle) to 10 (1 = saturated)').max(10, 'from 0 (idle) to 10 (1 = saturated)'),
  freeBytes: z.number().int().min(0).max(MAX_CAPACITY_BYTES, 'at most 1 PiB (1125899906842624 bytes)'),
  // issue 17 (docs/steering.md): the edge's site and its cache capacity (RAM + disk tier bytes), its affinity weight
  site: z.string().regex(/^[a-z0-9._-]{1,64}$/, 'a site is 1-64 characters of [a-z0-9._-]').optional(),
  capacityBytes: z.number().int('a whole number of bytes').min(0, 'at least 0 bytes')
    .max(MAX_CAPACITY_BYTES, 'at most 1 PiB (1125899906842624 bytes): the RAM + disk tier bytes of one edge').optional(),
}).strict().refine(h => h.capacityBytes === undefined || h.freeBytes <= h.capacityBytes,
  { path: ['freeBytes'], message: 'cannot exceed capacityBytes' })

export type Heartbeat = z.infer<typeof heartbeatSchema>

interface EdgeEntry extends Heartbeat {
  lastSeen: number
  nets: BlockList
  /** received by this router, not learnt from a peer */
  direct: boolean
}

/** A refused heartbeat, naming the first field that was wrong (`reason`: what the refusal counter counts). */
export class HeartbeatRefusedError extends BadRequestError {
  constructor(message: string, readonly reason: HeartbeatRefusal) {
    super(message, 'CDN_ERR_BAD_HEARTBEAT')
  }
}

export function parseHeartbeat(body: unknown): Heartbeat {
  const r = heartbeatSchema.safeParse(body)
  if (!r.success) {
    const first = r.error.issues[0]?.path[0]
    const reason = (HEARTBEAT_REFUSALS as readonly unknown[]).includes(first) ? first as HeartbeatRefusal : 'body'
    throw new HeartbeatRefusedError(`invalid heartbeat: ${r.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, reason)
  }
  return r.data
}

/** An edge's affinity weight: its capacity, 1 when it declares none (lib/affinity.ts). */
export function weightOf(e: { capacityBytes?: number | undefined }): number {
  return e.capacityBytes !== undefined && e.capacityBytes > 0 ? e.capacityBytes : 1
}

export interface RankedEdge {
  id: string
  url: string
  local: boolean
  load: number
  /** affinity weight (capacityBytes, or 1) */
  weight: number
  site: string | undefined
}

export interface SiteMember { id: string; url: string; weight: number }

const SITE_MEMO_MS = 1000

export class EdgeRegistry {
  private readonly edges = new Map<string, EdgeEntry>()
  private readonly sites = new Map<string, { at: number; members: SiteMember[] }>()

  /** `silenceMs` changes with a config reload (router.edgeSilenceMs) */
  constructor(public silenceMs: number, private readonly maxEdges = 10_000) {}

  heartbeat(hb: Heartbeat, now: number): void {
    this.put(hb, now, true)
  }

  /** A heartbeat a peer router received `lastSeen` (on this router's clock): kept if it is the most recent of that edge's. */
  mergePeer(hb: Heartbeat, lastSeen: number): boolean {
    const have = this.edges.get(hb.id)
    if (have && have.lastSeen >= lastSeen) return false
    this.put(hb, lastSeen, false)
    return true
  }

  /** The heartbeats this router received itself, with their age: what peers merge. */
  own(now: number): (Heartbeat & { ageMs: number })[] {
    return [...this.edges.values()].filter(e => e.direct)
      .map(({ nets: _n, direct: _d, lastSeen, ...hb }) => ({ ...hb, ageMs: Math.max(0, now - lastSeen) }))
  }

  private put(hb: Heartbeat, lastSeen: number, direct: boolean): void {
    const had = this.edges.get(hb.id)
    // a site's member list changes with a member's arrival, departure, URL or weight: not with a routine heartbeat
    if (had === undefined || had.site !== hb.site || had.healthy !== hb.healthy || had.url !== hb.url || weightOf(had) !== weightOf(hb)) {
      if (had?.site !== undefined) this.sites.delete(had.site)
      if (hb.site !== undefined) this.sites.delete(hb.site)
    }
    if (!this.edges.has(hb.id) && this.edges.size >= this.maxEdges) throw new HeartbeatRefusedError(`too many edges registered (limit ${this.maxEdges})`, 'too_many_edges')
    const nets = new BlockList()
    for (const n of hb.networks) {
      const c = parseCidr(n)
      nets.addSubnet(c.address, c.prefix, c.type)
    }
    this.edges.set(hb.id, { ...hb, lastSeen, nets, direct })
  }

  remove(id: string): boolean {
    const site = this.edges.get(id)?.site
    if (site !== undefined) this.sites.delete(site)
    return this.edges.delete(id)
  }

  /** Edges that may be offered now. */
  live(now: number): EdgeEntry[] {
    return [...this.edges.values()].filter(e => e.healthy && now - e.lastSeen <= this.silenceMs)
  }

  /**
   * How many edges are in each state, for the router's reelcdn_router_edges gauge: live (offered), unhealthy (a
   * recent heartbeat said so), silent (none for silenceMs while its last said healthy: lost without a word, what
   * ReelcdnEdgeSilent alerts on) and gone (quiet after an unhealthy last heartbeat, such as an edge's farewell on a
   * planned stop). Both quiet states last until the edge comes back or the router restarts: nothing forgets an edge.
   */
  counts(now: number): { live: number; unhealthy: number; silent: number; gone: number } {
    const c = { live: 0, unhealthy: 0, silent: 0, gone: 0 }
    for (const e of this.edges.values()) {
      if (now - e.lastSeen > this.silenceMs) e.healthy ? c.silent++ : c.gone++
      else e.healthy ? c.live++ : c.unhealthy++
    }
    return c
  }

  list(now: number): (Heartbeat & { lastSeen: number; live: boolean })[] {
    return [...this.edges.values()].map(({ nets: _n, ...e }) => ({ ...e, live: e.healthy && now - e.lastSeen <= this.silenceMs }))
  }

  /** The region of a live edge that serves `ip`'s network, if one declares regions. */
  regionOf(ip: string, now: number): string | undefined {
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6'
    return this.live(now).find(e => e.regions.length > 0 && e.nets.check(ip, type))?.regions[0]
  }

  /**
   * Every live edge for a client: local ones (serving its network or region)
   * first, then the rest; within each, the less loaded first. What
   * router.steering=load answers, and what affinity steering reorders the
   * local part of (router/playback/steering.ts).
   */
  rank(client: { ip?: string; region?: string }, now: number, limit = Infinity): RankedEdge[] {
    const ip = client.ip?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
    const type = ip && isIPv4(ip) ? 'ipv4' : 'ipv6'
    return this.live(now)
      .map(e => ({
        id: e.id, url: e.url, load: e.load, weight: weightOf(e), site: e.site,
        local: (client.region !== undefined && e.regions.includes(client.region)) || (ip !== undefined && e.nets.check(ip, type)),
      }))
      .sort((a, b) => Number(b.local) - Number(a.local) || a.load - b.load || (a.id < b.id ? -1 : 1))
      .slice(0, limit)
  }

  /**
   * The live edges of a site, the sender included: what a heartbeat's answer
   * lists (docs/steering.md). Every heartbeat asks, so the list is kept for a
   * second (an edge falling silent leaves it within that), and dropped at once
   * when a member comes, goes or changes.
   */
  siteMembers(site: string, now: number): SiteMember[] {
    const kept = this.sites.get(site)
    if (kept && now >= kept.at && now - kept.at < SITE_MEMO_MS) return kept.members
    const members = this.live(now).filter(e => e.site === site).map(e => ({ id: e.id, url: e.url, weight: weightOf(e) }))
    if (this.sites.size > 10_000) this.sites.clear()
    this.sites.set(site, { at: now, members })
    return members
  }
}
