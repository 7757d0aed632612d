import type { Logger } from '../../lib/logger.js'
import { parseHeartbeat, type EdgeRegistry } from './edge-registry.js'
import { PeerExchange } from './peer-exchange.js'

/**
 * Steering across routers. Behind a load balancer an edge's heartbeats reach
 * one router or another, so each router alone would see an edge only now and
 * then. Every `intervalMs` each router asks its peers (router.peers) for
 * `GET /v1/edges/state` — the heartbeats that peer received itself, each with
 * its age — and keeps, per edge id, the most recent heartbeat it knows
 * (EdgeRegistry.mergePeer). So:
 *   - every router steers to every edge, whichever router its heartbeats reach;
 *   - an edge that falls silent leaves every router's steering within
 *     `router.edgeSilenceMs` plus one exchange interval; an edge's farewell
 *     (healthy: false) spreads the same way;
 *   - ages cross, not timestamps, so routers' clocks need not agree (the
 *     exchange's own latency is the error);
 *   - only heartbeats received directly are served, so nothing echoes back.
 * The state carries edge URLs and networks: it needs the edge credential
 * (REELCDN_EDGE_TOKEN), which every router of a deployment holds.
 */
export class EdgePeers extends PeerExchange {
  constructor(registry: EdgeRegistry, peers: readonly string[], token: string | undefined,
    intervalMs: number, logger: Logger, clock: () => number = Date.now) {
    super({ peers, path: '/v1/edges/state', what: 'edge', intervalMs, logger, clock, token,
      apply: (body, sentAt) => {
        const edges = (body as { edges?: unknown } | null)?.edges
        if (!Array.isArray(edges)) throw new Error('answered something other than an edge state')
        // ages are as of the peer's answer, which came after sentAt: counting from sentAt errs on the side of older
        for (const e of edges as { ageMs?: unknown }[]) {
          const { ageMs, ...hb } = e
          if (typeof ageMs !== 'number' || !Number.isFinite(ageMs) || ageMs < 0) throw new Error('an edge without a valid ageMs')
          registry.mergePeer(parseHeartbeat(hb), sentAt - ageMs)
        }
      } })
  }
}
