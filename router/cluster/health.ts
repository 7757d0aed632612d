import type { Logger } from '../../lib/logger.js'
import type { Config } from '../../lib/config/config.js'
import type { ShardClient, ShardStatus } from './shard-client.js'

/**
 * Active health checks with hysteresis. Every `intervalMs` each shard's
 * /v1/status is fetched (it needs the token and touches the shard's index, so
 * it proves more than a TCP accept). A shard is marked down after `fall`
 * consecutive failures and up again after `rise` consecutive successes, so one
 * slow answer does not flap it. Shards start up: until checks say otherwise,
 * reads try them in ring order like any other.
 *
 * Health only orders reads and skips writes; it never changes placement. A
 * down shard keeps its ring place and its replicas still count (see ring.ts).
 *
 * Checks of one round run in parallel; rounds never overlap (the timer is
 * re-armed after a round ends).
 */
export interface ShardHealth {
  up: boolean
  /** epoch ms of the last transition (or of start) */
  since: number
  okStreak: number
  failStreak: number
  lastCheckAt: number | null
  lastError: string | null
  status: ShardStatus | null
  /** epoch ms, this router's clock, when `status` arrived: what the ages it carries count back from */
  statusAt: number | null
}

export class HealthMonitor {
  private readonly state = new Map<string, ShardHealth>()
  private timer: NodeJS.Timeout | undefined
  private round: Promise<void> | undefined
  private stopped = false

  constructor(private shards: readonly ShardClient[], private readonly cfg: Config['router']['health'], private readonly logger: Logger) {
    this.track(shards)
  }

  /** Checks these shards from the next round on (a reshard): a new one starts up, a removed one is forgotten. */
  track(shards: readonly ShardClient[]): void {
    const now = Date.now()
    const ids = new Set(shards.map(s => s.id))
    for (const id of this.state.keys()) if (!ids.has(id)) this.state.delete(id)
    for (const s of shards) if (!this.state.has(s.id))
      this.state.set(s.id, { up: true, since: now, okStreak: 0, failStreak: 0, lastCheckAt: null, lastError: null, status: null, statusAt: null })
    this.shards = shards
  }

  isUp(id: string): boolean {
    return this.state.get(id)?.up ?? false
  }

  get(id: string): ShardHealth {
    return this.state.get(id)!
  }

  start(): void {
    const tick = () => {
      this.timer = undefined
      void this.checkAll().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.cfg.intervalMs).unref()
      })
    }
    this.timer = setTimeout(tick, 0).unref()
  }

  /** One round of checks; a round already running is joined, not doubled. */
  checkAll(): Promise<void> {
    this.round ??= Promise.all(this.shards.map(s => this.check(s))).then(() => { this.round = undefined })
    return this.round
  }

  private async check(s: ShardClient): Promise<void> {
    try {
      const status = await s.status(this.cfg.timeoutMs)
      this.record(s.id, null, status)
    } catch (err) {
      this.record(s.id, (err as Error).message, null)
    }
  }

  /** Applies one check result. Exposed for passive signals and tests. */
  record(id: string, error: string | null, status: ShardStatus | null): void {
    const h = this.state.get(id)
    if (!h) return
    h.lastCheckAt = Date.now()
    if (error === null) {
      h.okStreak++
      h.failStreak = 0
      h.lastError = null
      if (status) {
        h.status = status
        h.statusAt = h.lastCheckAt
      }
      if (!h.up && h.okStreak >= this.cfg.rise) this.flip(id, h, true)
    } else {
      h.failStreak++
      h.okStreak = 0
      h.lastError = error
      if (h.up && h.failStreak >= this.cfg.fall) this.flip(id, h, false)
    }
  }

  private flip(id: string, h: ShardHealth, up: boolean): void {
    h.up = up
    h.since = Date.now()
    if (up) this.logger.info({ shard: id }, 'shard is up')
    else this.logger.warn({ shard: id, err: h.lastError }, 'shard is down: reads go to its other owners until it is back')
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.round
  }
}
