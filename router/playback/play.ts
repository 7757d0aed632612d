import { BlockList, isIPv4 } from 'node:net'
import { CdnError } from '../../lib/errors.js'
import { isAdaptive, type Manifest } from '../../lib/manifest.js'
import { MASTER } from '../../lib/media/hls.js'
import { MPD } from '../../lib/media/dash.js'
import { parseCidr, signToken, type KeyRing } from '../../lib/security/tokens.js'
import type { EdgeRegistry } from './edge-registry.js'
import type { Steering } from './steering.js'
import type { SteeringChoice } from '../../lib/metrics.js'

/**
 * `GET /v1/play/{contentId}`: may this client play the title, and from where?
 *
 * Order of decisions: the title exists (404), its availability window holds
 * now (403 with the window), the client's region is licensed (451 with the
 * regions that are), then up to `limit` URLs: edges ranked by the registry
 * (local network/region first, then less loaded) and ordered by steering
 * (steering.ts: the title's owners among the local edges first), the origin
 * cluster (this router) last. Every URL carries the same signed token: HMAC over the title,
 * an expiry, the viewer id and (optionally) the client's network, so any of
 * the URLs serves every range of the session.
 *
 * For an adaptive title each URL entry also has `hls` and `dash`, its master
 * playlist and MPD with the token in the path
 * (`/v1/content/{id}/t/{token}/master.m3u8`), which players keep when they
 * resolve the playlists' relative URIs (docs/abr.md, "URLs"); `url` is the
 * master's. A single-file title's answer is as before.
 *
 * The region is the explicit `?region=`, else the first of
 * `router.regionNetworks` containing the client address, else the regions of an
 * edge serving the client's network. A title licensed for named regions is
 * refused (451) to a client whose region is unknown: the license cannot be
 * shown to hold.
 */
export class UnavailableForLegalReasonsError extends CdnError {
  override name = 'UnavailableForLegalReasonsError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_NOT_LICENSED', statusCode: 451, source: 'client' })
  }
}

export class OutsideAvailabilityError extends CdnError {
  override name = 'OutsideAvailabilityError'
  constructor(message: string) {
    super(message, { code: 'CDN_ERR_NOT_AVAILABLE', statusCode: 403, source: 'client' })
  }
}

export interface PlayRequest {
  ip: string | undefined
  /** explicit region, already validated */
  region: string | undefined
  viewerId: string
  now: number
}

export interface PlayUrl {
  url: string
  kind: 'edge' | 'origin'
  id: string
  /** an adaptive title's tokened master playlist (= url) and MPD */
  hls?: string
  dash?: string
}

export interface PlayAnswer {
  contentId: string
  title: string
  size: number
  /** only on an adaptive title */
  adaptive?: true
  region: string | null
  viewerId: string
  token: string
  expiresAt: string
  urls: PlayUrl[]
  /** where the player reports its position: PUT with the token (router/playback/playback-api.ts) */
  sessionUrl: string
}

export interface PlayOptions {
  ring: KeyRing
  ttlMs: number
  bindNetwork: boolean
  originUrl: string
  limit: number
  /** the order of the edges (router.steering); without it, the registry's: local first, less loaded first */
  steering?: Steering
  /** told why the first edge came first, and which it is (none: no live edge; the steering metrics) */
  steered?: (choice: SteeringChoice, edge: string | undefined) => void
}

export class RegionMap {
  private readonly entries: { list: BlockList; region: string }[]

  constructor(map: readonly { cidr: string; region: string }[]) {
    this.entries = map.map(e => {
      const c = parseCidr(e.cidr)
      const list = new BlockList()
      list.addSubnet(c.address, c.prefix, c.type)
      return { list, region: e.region }
    })
  }

  lookup(ip: string): string | undefined {
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6'
    return this.entries.find(e => e.list.check(ip, type))?.region
  }
}

/** `::ffff:192.0.2.1` → `192.0.2.1` */
export function plainIp(ip: string | undefined): string | undefined {
  return ip?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')
}

/** The client's /24 (IPv4) or /64 (IPv6), what a token is bound to. */
export function clientNetwork(ip: string): string | undefined {
  if (isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`
  const full = expandV6(ip)
  return full ? `${full.slice(0, 4).join(':')}::/64` : undefined
}

function expandV6(ip: string): string[] | undefined {
  if (ip.includes('.')) return undefined
  const [head, tail] = ip.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0')
  const all = [...h, ...fill, ...t]
  return all.length === 8 ? all : undefined
}

export function checkRights(man: Manifest, region: string | null, now: number): void {
  const r = man.rights
  if (r.availableFrom !== null && now < r.availableFrom)
    throw new OutsideAvailabilityError(`${man.contentId} is not available before ${new Date(r.availableFrom).toISOString()}`)
  if (r.availableUntil !== null && now >= r.availableUntil)
    throw new OutsideAvailabilityError(`${man.contentId} has not been available since ${new Date(r.availableUntil).toISOString()}`)
  if (r.regions.includes('*')) return
  if (region === null)
    throw new UnavailableForLegalReasonsError(`${man.contentId} is licensed only in ${r.regions.join(', ')} and the client's region is unknown: pass ?region=`)
  if (!r.regions.includes(region))
    throw new UnavailableForLegalReasonsError(`${man.contentId} is not licensed in ${region} (licensed in ${r.regions.join(', ') || 'no region'})`)
}

export function play(man: Manifest, req: PlayRequest, edges: EdgeRegistry, regions: RegionMap, o: PlayOptions): PlayAnswer {
  const ip = plainIp(req.ip)
  const region = req.region ?? (ip !== undefined ? regions.lookup(ip) ?? edges.regionOf(ip, req.now) : undefined) ?? null
  checkRights(man, region, req.now)
  const exp = Math.floor((req.now + o.ttlMs) / 1000)
  const net = o.bindNetwork && ip !== undefined ? clientNetwork(ip) : undefined
  const token = signToken(o.ring, { cid: man.contentId, exp, vid: req.viewerId, ...(net ? { net } : {}) })
  const live = edges.rank({ ...(ip !== undefined ? { ip } : {}), ...(region !== null ? { region } : {}) }, req.now)
  const steered = o.steering?.order(man.contentId, req.viewerId, live, req.now) ?? { edges: live, choice: 'load' as const }
  o.steered?.(steered.choice, steered.edges[0]?.id)
  const ranked = steered.edges.slice(0, Math.max(0, o.limit - 1))
  const entry = playUrl(man, token)
  const urls: PlayUrl[] = ranked.map(e => entry(e.url, 'edge', e.id))
  urls.push(entry(o.originUrl, 'origin', 'origin'))
  return { contentId: man.contentId, title: man.title, size: man.size, ...(isAdaptive(man) ? { adaptive: true as const } : {}), region, viewerId: req.viewerId, token,
    expiresAt: new Date(exp * 1000).toISOString(), urls,
    sessionUrl: `${o.originUrl.replace(/\/+$/, '')}/v1/sessions/${encodeURIComponent(man.contentId)}` }
}

/** The URL entry of one server for a title: `?token=` for a single file, the token in the path for an adaptive title's playlists. */
function playUrl(man: Manifest, token: string): (base: string, kind: PlayUrl['kind'], id: string) => PlayUrl {
  const path = `/v1/content/${encodeURIComponent(man.contentId)}`
  if (!isAdaptive(man)) return (base, kind, id) => ({ url: `${base.replace(/\/+$/, '')}${path}?token=${token}`, kind, id })
  return (base, kind, id) => {
    const dir = `${base.replace(/\/+$/, '')}${path}/t/${token}/`
    return { url: dir + MASTER, kind, id, hls: dir + MASTER, dash: dir + MPD }
  }
}
