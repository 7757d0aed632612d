import { request } from 'undici'
import type { Logger } from '../lib/logger.js'
import type { Trending } from './trending.js'
import type { Ring } from './window-counter.js'

/**
 * Trending across routers. Each router counts only the demand reports it
 * received; every `intervalMs` it asks each peer (router.peers) for
 * `GET /v1/trending/state` — that peer's OWN counters, stamped with its router
 * id and the time — and keeps the latest state per router id, replacing the
 * one held (window-counter.ts `MergedCounts`). A router's answers sum its own
 * counters and every peer's latest, so:
 *   - an exchange repeated or delivered out of order never double-counts
 *     (replacement by router id, newer `at` wins);
 *   - an edge's report is counted once, on the router it reached;
 *   - a peer's counts lag by at most one exchange interval;
 *   - peers' states are also written to SQLite, so a restart keeps them until
 *     the next exchange replaces them.
 * Peers must have distinct router ids (router.id). Only own counters are
 * served, never merged ones, so states do not echo between routers.
 */
export class TrendingPeers {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor(private readonly trending: Trending, private readonly peers: readonly string[], private readonly intervalMs: number,
    private readonly logger: Logger) {}

  start(): void {
    if (this.peers.length === 0) return
    this.timer = setInterval(() => { void this.exchange() }, this.intervalMs)
    this.timer.unref()
  }

  /** One round: every peer once. Failures are logged and retried next round. */
  exchange(): Promise<void> {
    this.running ??= (async () => {
      for (const peer of this.peers) {
        try {
          const res = await request(`${peer.replace(/\/+$/, '')}/v1/trending/state`, { headersTimeout: 5000, bodyTimeout: 10_000 })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw new Error(`answered ${res.statusCode}`)
          }
          const body = await res.body.json() as { routerId?: unknown; at?: unknown; state?: unknown }
          if (typeof body.routerId !== 'string' || typeof body.at !== 'number' || typeof body.state !== 'object' || body.state === null)
            throw new Error('answered something other than a trending state')
          this.trending.mergePeer(body.routerId, body.at, body.state as Record<string, Ring[]>)
        } catch (err) {
          this.logger.warn({ peer, err: (err as Error).message }, 'trending exchange with a peer router failed')
        }
      }
    })().finally(() => { this.running = undefined })
    return this.running
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    await this.running
  }
}
