import { ownersOf } from '../../lib/affinity.js'
import type { RunningEdge } from '../../edge/main.js'
import { FakeUpstream } from './fake-upstream.js'
import { startTestEdge, until, type TestContext } from './edge.js'
import type { Logger } from '../../lib/logger.js'

/**
 * A site of edges for peer fill tests (issue 17, docs/peer-fill.md): edges
 * declaring one site behind a FakeUpstream that plays the router, answering
 * each heartbeat with the site as contract-17 says (`site.members` from the
 * heartbeats it has seen, `hot`), and counting every chunk request (the
 * origin fetches). `view(id)` lets a test give one edge another view of the
 * site (disagreeing views, a member that is not a real edge).
 */
export const EDGE_CREDENTIAL = 'test-edge-credential-for-peers'
export const SITE = 's1'

export interface Member {
  id: string
  url: string
  weight: number
}

export interface Site {
  up: FakeUpstream
  edges: RunningEdge[]
  /** the members every edge is told of (urls from their heartbeats), unless `view` says otherwise for one */
  members(): Member[]
  /** what the router answers this edge's heartbeats; default: every edge of the site, `hot` empty */
  view: (id: string) => { members: Member[]; hot?: { contentId: string; owners: number }[] } | undefined
  /** waits until each edge's view has `n` members (one heartbeat reply in) */
  settled(n?: number): Promise<void>
}

export async function startSite(t: TestContext, ids: string[], overrides: Record<string, string | number | boolean> = {},
  o: { logger?: (id: string) => Logger; each?: (id: string) => Record<string, string | number | boolean> } = {}): Promise<Site> {
  const up = await FakeUpstream.start()
  t.teardown(() => up.close())
  const seen = new Map<string, string>()
  const site: Site = {
    up, edges: [],
    members: () => ids.filter(id => seen.has(id)).map(id => ({ id, url: seen.get(id)!, weight: 1 })),
    view: () => undefined,
    settled: n => until(() => site.edges.every(e => e.site.members.length === (n ?? ids.length)), 'every edge to hear of its site'),
  }
  up.heartbeat = hb => {
    if (ids.includes(hb.id)) seen.set(hb.id, hb.url)
    const v = site.view(hb.id) ?? { members: site.members() }
    return { site: { id: SITE, members: v.members }, hot: v.hot ?? [] }
  }
  for (const id of ids) {
    site.edges.push(await startTestEdge(t, { url: up.url, token: undefined }, {
      'edge.id': id, 'edge.site': SITE, 'edge.heartbeatMs': 25, 'edge.fill.path': 'relay', ...overrides, ...o.each?.(id),
    }, { REELCDN_EDGE_TOKEN: EDGE_CREDENTIAL }, o.logger?.(id)))
  }
  await site.settled()
  return site
}

/** The first id `${prefix}-<n>` whose first owner among `members` is `owner` (lib/affinity.ts, as the edges decide). */
export function titleOwnedBy(members: Member[], owner: string, prefix = 'film'): string {
  for (let n = 0; n < 1000; n++) {
    const id = `${prefix}-${n}`
    if (ownersOf(id, members, 1)[0]!.id === owner) return id
  }
  throw new Error(`no title owned by ${owner}`)
}
