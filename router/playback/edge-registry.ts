import { BlockList, isIPv4 } from 'node:net'
import { z } from 'zod'
import { BadRequestError } from '../../lib/errors.js'
import { parseCidr } from '../../lib/tokens.js'

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
 */
export const heartbeatSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'an edge id is 1-64 characters of [A-Za-z0-9._-]'),
  url: z.string().url().refine(u => /^https?:\/\//.test(u), 'an http(s) URL'),
  networks: z.array(z.string().refine(s => { try { parseCidr(s); return true } catch { return false } }, 'a CIDR such as 192.0.2.0/24')).max(1000),
  regions: z.array(z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 code')).max(300).default([]),
  healthy: z.boolean(),
  /** 0 = idle, 1 = saturated */
  load: z.number().min(0).max(10),
  freeBytes: z.number().int().min(0),
}).strict()

export type Heartbeat = z.infer<typeof heartbeatSchema>

interface EdgeEntry extends Heartbeat {
  lastSeen: number
  nets: BlockList
  /** received by this router, not learnt from a peer */
  direct: boolean
}

export function parseHeartbeat(body: unknown): Heartbeat {
  const r = heartbeatSchema.safeParse(body)
  if (!r.success) throw new BadRequestError(`invalid heartbeat: ${r.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  return r.data
}

export interface RankedEdge {
  id: string
  url: string
  local: boolean
  load: number
}

export class EdgeRegistry {
  private readonly edges = new Map<string, EdgeEntry>()

  constructor(private readonly silenceMs: number, private readonly maxEdges = 10_000) {}

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
    if (!this.edges.has(hb.id) && this.edges.size >= this.maxEdges) throw new BadRequestError(`too many edges registered (limit ${this.maxEdges})`)
    const nets = new BlockList()
    for (const n of hb.networks) {
      const c = parseCidr(n)
      nets.addSubnet(c.address, c.prefix, c.type)
    }
    this.edges.set(hb.id, { ...hb, lastSeen, nets, direct })
  }

  remove(id: string): boolean {
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

  rank(client: { ip?: string; region?: string }, now: number, limit: number): RankedEdge[] {
    const ip = client.ip?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
    const type = ip && isIPv4(ip) ? 'ipv4' : 'ipv6'
    return this.live(now)
      .map(e => ({
        id: e.id, url: e.url, load: e.load,
        local: (client.region !== undefined && e.regions.includes(client.region)) || (ip !== undefined && e.nets.check(ip, type)),
      }))
      .sort((a, b) => Number(b.local) - Number(a.local) || a.load - b.load || (a.id < b.id ? -1 : 1))
      .slice(0, limit)
  }
}
