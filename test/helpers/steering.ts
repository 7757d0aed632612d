import { request } from 'undici'
import type { TestCluster } from '../system/harness.js'
import { EDGE_TOKEN, viewerCredential } from '../system/harness.js'

/**
 * Steering tests (test/system/steering-*.test.ts): edges that exist only by
 * their heartbeats (/v1/play never calls an edge, it names it), titles that
 * exist only by their manifests (a play reads nothing else), and the first
 * URL of a play answer.
 */
export interface FakeEdge {
  id: string
  site?: string
  capacityBytes?: number
  healthy?: boolean
  load?: number
  networks?: string[]
}

export async function heartbeat(routerUrl: string, e: FakeEdge | Record<string, unknown>, token: string | undefined = EDGE_TOKEN) {
  const f = e as FakeEdge
  const body = 'url' in e ? e : { id: f.id, url: `http://${f.id}.example:8080`, networks: f.networks ?? ['127.0.0.0/8'], regions: [],
    healthy: f.healthy ?? true, load: f.load ?? 0, freeBytes: 0,
    ...(f.site !== undefined ? { site: f.site } : {}), ...(f.capacityBytes !== undefined ? { capacityBytes: f.capacityBytes } : {}) }
  const res = await request(`${routerUrl}/v1/edges/heartbeat`, { method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  const text = await res.body.text()
  return { status: res.statusCode, json: JSON.parse(text) as any }
}

/**
 * `n` titles `<prefix>0..n-1`: one small title ingested, its manifest
 * published again under each id (a manifest write each, where an ingest
 * writes chunks too: 1000 titles in seconds).
 */
export async function titles(c: TestCluster, n: number, prefix = 'title-'): Promise<string[]> {
  await c.ingest(`${prefix}base`, Buffer.alloc(1000, 7))
  const base = await c.router.manifests.get(`${prefix}base`)
  const ids = Array.from({ length: n }, (_, i) => `${prefix}${i}`)
  for (let i = 0; i < ids.length; i += 50)
    await Promise.all(ids.slice(i, i + 50).map(id => c.router.manifests.publish({ ...base, contentId: id, title: id }, 1)))
  return ids
}

/** The edge ids of a play answer, in order (the origin last). `viewer`: a named viewer, else anonymous. */
export async function playOrder(routerUrl: string, contentId: string, viewer?: string): Promise<string[]> {
  const q = viewer === undefined ? '' : `?viewer=${encodeURIComponent(viewerCredential(viewer))}`
  const res = await request(`${routerUrl}/v1/play/${contentId}${q}`)
  const body = await res.body.json() as { urls?: { id: string }[] }
  if (res.statusCode !== 200) throw new Error(`play ${contentId}: ${res.statusCode} ${JSON.stringify(body)}`)
  return body.urls!.map(u => u.id)
}

/** The first edge of each title's play answer, `concurrency` plays at a time. */
export async function firstEdges(routerUrl: string, ids: readonly string[], viewer?: (id: string) => string | undefined, concurrency = 8): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (let i = 0; i < ids.length; i += concurrency)
    await Promise.all(ids.slice(i, i + concurrency).map(async id => out.set(id, (await playOrder(routerUrl, id, viewer?.(id)))[0]!)))
  return out
}

/** A counter's value on the router's /metrics (0 when absent). */
export async function routerCounter(c: TestCluster, name: string, labels: string): Promise<number> {
  const text = (await c.get('/metrics')).body.toString()
  const m = text.match(new RegExp(`^${name}\\{${labels},service="router"\\} (\\S+)$`, 'm'))
  return m ? Number(m[1]) : 0
}
