import { request } from 'undici'
import type { Logger } from '../../lib/logger.js'

/**
 * The loop both peer exchanges run (trending counts, edge heartbeats): every
 * `intervalMs`, GET `path` from each peer router in turn and hand the JSON body
 * to `apply` with the time the request started. One round at a time; a peer
 * that fails (status, timeout, a body `apply` rejects) is logged and asked again
 * next round, and never stops the others. Both states are for routers only:
 * each request carries the edge credential (`token`, which every router of a
 * deployment holds); without one the exchange does not start, and says so.
 */
export interface PeerExchangeOptions {
  peers: readonly string[]
  path: string
  /** What is exchanged, for the log line of a failure: 'trending', 'edge'. */
  what: string
  intervalMs: number
  logger: Logger
  /** the edge credential (REELCDN_EDGE_TOKEN or router.edgeTokenFile) the peers' state routes require */
  token: string | undefined
  clock?: () => number
  /** Takes one peer's answer; throws if it is not what was asked for. */
  apply: (body: unknown, sentAt: number) => void
}

export class PeerExchange {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  private readonly headers: Record<string, string>

  constructor(private readonly o: PeerExchangeOptions) {
    this.headers = o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }
  }

  start(): void {
    if (this.o.peers.length === 0) return
    if (this.o.token === undefined) {
      this.o.logger.warn(`router.peers is set but there is no edge credential (REELCDN_EDGE_TOKEN or router.edgeTokenFile): ${this.o.what} state is not shared with peers`)
      return
    }
    this.timer = setInterval(() => { void this.exchange() }, this.o.intervalMs)
    this.timer.unref()
  }

  /** One round: every peer once. */
  exchange(): Promise<void> {
    const clock = this.o.clock ?? Date.now
    this.running ??= (async () => {
      for (const peer of this.o.peers) {
        try {
          const sentAt = clock()
          const res = await request(`${peer.replace(/\/+$/, '')}${this.o.path}`, { headers: this.headers, headersTimeout: 5000, bodyTimeout: 10_000 })
          if (res.statusCode !== 200) {
            await res.body.dump()
            throw new Error(`answered ${res.statusCode}`)
          }
          this.o.apply(await res.body.json(), sentAt)
        } catch (err) {
          this.o.logger.warn({ peer, err: (err as Error).message }, `${this.o.what} exchange with a peer router failed`)
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
