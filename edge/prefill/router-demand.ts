import { request } from 'undici'
import { isAdaptive } from '../../lib/manifest.js'
import type { Title } from '../title.js'
import { renditionShares, type FileDemand, type TitleDemand } from './prefill-plan.js'

/**
 * What prefill plans from: the router's trending titles (GET /v1/trending with
 * positions), each with its manifest. For an adaptive title the router also
 * answers, per rendition, its plays and reads (router/playback/trending.ts);
 * each rendition's share of the title's reads weighs its chunks
 * (prefill-plan.ts), spread over its file by the title's positions (rungs
 * are aligned in time, so where viewers are in the title is where they are
 * in each rung). A router from before issue 15 answers no renditions: their
 * shares are then the even prior.
 */
export interface TrendingTitle {
  contentId: string
  plays: number
  positions?: number[] | null
  /** `positions` per rendition: not answered by this project's routers (see trending.ts), used if one does */
  renditions?: { id: string; plays: number; reads: number; positions?: number[] | null }[]
}

/**
 * Titles in demand from the router's trending list (with position shares), and their manifests.
 * `keep` (a site's share, edge/site/site-view.ts `owns`): only the titles it keeps are planned, and their
 * manifests alone fetched; the caller asks a longer list (`limit`) so the share is as long as an edge's alone.
 */
export async function demandFromRouter(upstream: string, token: string | undefined, window: string, limit: number,
  title: (id: string) => Promise<Title> | Title, keep: (contentId: string) => boolean = () => true): Promise<{ demand: TitleDemand; title: Title }[]> {
  const res = await request(`${upstream.replace(/\/+$/, '')}/v1/trending?window=${window}&limit=${Math.min(limit, 10_000)}&positions=1`, {
    headersTimeout: 10_000, bodyTimeout: 10_000, headers: token ? { authorization: `Bearer ${token}` } : {} })
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`the router's /v1/trending answered ${res.statusCode}`)
  }
  const body = await res.body.json() as { titles: TrendingTitle[] }
  const out: { demand: TitleDemand; title: Title }[] = []
  for (const t of body.titles) {
    if (!keep(t.contentId)) continue
    let ti: Title
    try {
      ti = await title(t.contentId)
    } catch {
      continue // deleted since it was counted
    }
    out.push({ title: ti, demand: titleDemand(ti, t) })
  }
  return out
}

/** What prefill knows of one trending title. */
export function titleDemand(ti: Title, t: TrendingTitle): TitleDemand {
  const m = ti.manifest
  const demand: TitleDemand = { contentId: t.contentId, plays: t.plays, positions: t.positions ?? null, chunkSize: m.chunkSize, size: m.size }
  if (!isAdaptive(m)) return demand
  const counted = new Map((Array.isArray(t.renditions) ? t.renditions : []).map(r => [r.id, r]))
  const shares = renditionShares(m.renditions.map(r => r.id), new Map([...counted].map(([id, r]) => [id, Number(r.reads) || 0])))
  demand.files = m.renditions.map((r): FileDemand => ({
    rid: r.id, share: shares.get(r.id) ?? 0, positions: validPositions(counted.get(r.id)?.positions) ?? demand.positions, size: r.size }))
  return demand
}

function validPositions(p: unknown): number[] | null {
  return Array.isArray(p) && p.length === 20 && p.every(x => typeof x === 'number' && x >= 0) ? p as number[] : null
}
