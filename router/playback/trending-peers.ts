import type { Logger } from '../../lib/logger.js'
import type { Trending } from './trending.js'
import type { Ring } from './window-counter.js'
import { PeerExchange } from './peer-exchange.js'

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
 * The state is every title's counters (186 each: large, and what viewers
 * watch where): it needs the edge credential (REELCDN_EDGE_TOKEN), which
 * every router of a deployment holds (peer-exchange.ts), as the edge state does.
 */
export class TrendingPeers extends PeerExchange {
  constructor(trending: Trending, peers: readonly string[], token: string | undefined, intervalMs: number, logger: Logger) {
    super({ peers, path: '/v1/trending/state', what: 'trending', intervalMs, logger, token,
      apply: raw => {
        const body = raw as { routerId?: unknown; at?: unknown; state?: unknown } | null
        if (typeof body?.routerId !== 'string' || typeof body.at !== 'number' || typeof body.state !== 'object' || body.state === null)
          throw new Error('answered something other than a trending state')
        trending.mergePeer(body.routerId, body.at, body.state as Record<string, Ring[]>)
      } })
  }
}
