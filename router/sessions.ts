import { LRUCache } from 'lru-cache'

/**
 * Playback state: each viewer's last position per title (resume) and recent
 * history. Bounded twice: at most `maxViewers` viewers (the least recently
 * active leaves first) and `historyLength` titles per viewer (the oldest
 * report leaves first); a viewer with no report for `ttlMs` expires. All of it
 * is in memory: a router restart forgets positions (players report again
 * within seconds), and with several routers a viewer's state is on the router
 * their reports reached (@NOTE a load balancer should hash on the viewer).
 *
 * The clock is injected (`now` in ms) so tests drive expiry.
 */
export interface Position {
  contentId: string
  /** byte offset in the title */
  position: number
  size: number
  updatedAt: number
}

export interface SessionOptions {
  maxViewers: number
  historyLength: number
  ttlMs: number
}

export class Sessions {
  /** viewer id → titles by recency (Map keeps insertion order: delete + set moves one to the end) */
  private readonly viewers: LRUCache<string, Map<string, Position>>

  constructor(private readonly opts: SessionOptions, private readonly clock: () => number = Date.now) {
    this.viewers = new LRUCache({ max: opts.maxViewers, ttl: opts.ttlMs, ttlAutopurge: false, ttlResolution: 0, perf: { now: () => this.clock() } })
  }

  report(viewer: string, p: Position): void {
    let titles = this.viewers.get(viewer)
    if (!titles) {
      titles = new Map()
      this.viewers.set(viewer, titles)
    } else this.viewers.set(viewer, titles) // refreshes the TTL
    titles.delete(p.contentId)
    titles.set(p.contentId, p)
    while (titles.size > this.opts.historyLength) titles.delete(titles.keys().next().value!)
  }

  get(viewer: string, contentId: string): Position | undefined {
    return this.viewers.get(viewer)?.get(contentId)
  }

  /** Most recent first. */
  history(viewer: string): Position[] {
    const titles = this.viewers.get(viewer)
    return titles ? [...titles.values()].reverse() : []
  }

  get size(): number {
    return this.viewers.size
  }
}
