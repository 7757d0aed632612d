import { request } from 'undici'
import type { Logger } from '../lib/logger.js'
import { parseHeartbeat, type EdgeRegistry } from './edge-registry.js'

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
export class EdgePeers {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor(private readonly registry: EdgeRegistry, private readonly peers: readonly string[], private readonly token: string | undefined,
    private readonly intervalMs: number, private readonly logger: Logger, private readonly clock: () => number = Date.now) {}

  start(): void {
    if (this.peers.length === 0) return
    if (this.token === undefined) {
      this.logger.warn('router.peers is set but there is no edge credential (REELCDN_EDGE_TOKEN or router.edgeTokenFile): edges are not shared with peers')
      return
    }
    this.timer = setInterval(() => { void this.exchange() }, this.intervalMs)
    this.timer.unref()
  }

  /** One round: every peer once. Failures are logged and retried next round. */
  exchange(): Promise<void> {
    this.running ??= (async () => {
      for (const peer of this.peers) {
        try {
          const t0 = this.clock()
          const res = await request(`${peer.replace(/\/+$/, '')}/v1/edges/state`, {
            headers: this.token ? { authorization: `Bearer ${this.token}` } : {}, headersTimeout: 5000, bodyTimeout: 10_000 })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw new Error(`answered ${res.statusCode}`)
          }
          const body = await res.body.json() as { edges?: unknown }
          if (!Array.isArray(body.edges)) throw new Error('answered something other than an edge state')
          // ages are as of the peer's answer, which came after t0: counting from t0 errs on the side of older
          for (const e of body.edges as { ageMs?: unknown }[]) {
            const { ageMs, ...hb } = e
            if (typeof ageMs !== 'number' || !Number.isFinite(ageMs) || ageMs < 0) throw new Error('an edge without a valid ageMs')
            this.registry.mergePeer(parseHeartbeat(hb), t0 - ageMs)
          }
        } catch (err) {
          this.logger.warn({ peer, err: (err as Error).message }, 'edge exchange with a peer router failed')
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
