import { isIP } from 'node:net'
import { request } from 'undici'
import type { PlayResponse } from '../../client/player.js'
import { BadRequestError, UpstreamError } from '../../lib/errors.js'
import { parseContentId } from '../../lib/ids.js'

/**
 * Where a load test may send traffic, and what it finds there. Loopback is
 * always allowed; anything else needs --allow-remote, so a typo can never load
 * someone else's server.
 */
export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '')
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  if (host === '::1' || /^::ffff:127\./i.test(host)) return true
  // URL writes an IPv4-mapped address in hex: [::ffff:127.0.0.1] becomes [::ffff:7f00:1]
  const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/i.exec(host)
  return mapped !== null && parseInt(mapped[1]!, 16) >> 8 === 127
}

export function checkTarget(url: string, allowRemote: boolean): void {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new BadRequestError(`target ${JSON.stringify(url)} is not a URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BadRequestError(`target ${url} must be http or https`)
  if (!allowRemote && !isLoopback(url)) throw new BadRequestError(`target ${url} is not on this machine: pass --allow-remote to load a remote server`)
}

export interface Title {
  contentId: string
  /** bytes: a single-file title's file, an adaptive title's renditions together */
  size: number
  /** an adaptive title (issue 15): played from its HLS master, not as one file */
  adaptive?: boolean
}

/**
 * Titles from a router's catalog (`catalog`, default the target: an edge has
 * none) or, given ids, as given; their sizes from HEAD requests to the target.
 * Ranked in the order given.
 */
export async function discoverTitles(target: string, ids: string[] | undefined, headers: Record<string, string> = {}, catalog = target): Promise<Title[]> {
  // --titles: the contentId rule every service applies, before any request
  ids?.forEach(parseContentId)
  if (!ids || ids.length === 0) {
    const res = await request(`${catalog}/v1/content?limit=1000`, { headers })
    if (res.statusCode !== 200) {
      await res.body.dump()
      const hint = catalog === target ? ' (an edge has no catalog: pass --catalog with the router\'s URL, --config, or --titles)' : ': pass the titles with --titles'
      throw new BadRequestError(`${catalog}/v1/content answered ${res.statusCode}${hint}`)
    }
    const body = (await res.body.json()) as { items?: { contentId: string; size: number }[] }
    ids = (body.items ?? []).map(i => i.contentId)
    if (ids.length === 0) throw new BadRequestError(`the catalog at ${catalog} is empty: ingest a title first`)
  }
  return Promise.all(ids.map(async id => {
    const res = await request(`${target}/v1/content/${encodeURIComponent(id)}`, { method: 'HEAD', headers })
    await res.body.dump()
    if (res.statusCode === 200) return { contentId: id, size: Number(res.headers['content-length']) }
    // an adaptive title has no file of its own (404 CDN_ERR_ADAPTIVE, docs/abr.md): its manifest lists its renditions
    const adaptive = await adaptiveTitle(target, id, headers)
    if (!adaptive) throw new BadRequestError(`title ${id} at ${target}: HEAD answered ${res.statusCode}`)
    return adaptive
  }))
}

async function adaptiveTitle(target: string, id: string, headers: Record<string, string>): Promise<Title | undefined> {
  const res = await request(`${target}/v1/content/${encodeURIComponent(id)}/meta`, { headers })
  if (res.statusCode !== 200) return void await res.body.dump()
  const man = (await res.body.json()) as { renditions?: { size: number }[] }
  if (!man.renditions?.length) return undefined
  return { contentId: id, size: man.renditions.reduce((a, r) => a + r.size, 0), adaptive: true }
}

/** A player's play step: the router's /v1/play answer, whose every URL (and session URL) must pass checkTarget too. */
export function routerPlay(router: string, allowRemote: boolean): (contentId: string) => Promise<PlayResponse> {
  return async id => {
    const res = await request(`${router}/v1/play/${encodeURIComponent(id)}`, { headersTimeout: 10_000, bodyTimeout: 10_000 })
    if (res.statusCode !== 200) throw new UpstreamError(`/v1/play/${id} answered ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`)
    const body = (await res.body.json()) as PlayResponse
    for (const u of body.urls) checkTarget(u.url, allowRemote)
    if (body.sessionUrl) checkTarget(body.sessionUrl, allowRemote) // players PUT their position there
    return body
  }
}
