import { markFailed, markServed, sourceOrder, type Backoff, type Source } from '../source-choice.js'

/**
 * The servers an HLS player (client/abr/hls-player.ts) plays from, and which
 * one is current: the ABR estimate and the server-switch rule are about the
 * current server, and every request goes there unless it is a trial.
 *
 * The order is the player client's (client/source-choice.ts): working servers
 * before those down, edges before the origin, then /v1/play's. A request that
 * fails marks its server down for a backoff (2 s, doubled for each failure in
 * a row, at most 30 s); if it was the current server, the first working one
 * becomes current, and once the backoff of the server left has passed the
 * player goes back to it (issue 14, item 21: one failure must not keep a
 * player off its edge for good). A switch for quality (the server-switch
 * rule) is a choice, not a failover: no going back from it.
 */
export const PLAYER_BACKOFF: Backoff = { baseMs: 2000, maxMs: 30_000 }

export class PlayerServers {
  current: Source
  /** requests made again on another server */
  failovers = 0
  /** the server a failover moved playback from, until playback goes back to it */
  private failedOverFrom: Source | undefined

  constructor(readonly sources: Source[], private readonly backoff: Backoff = PLAYER_BACKOFF, private readonly now = () => performance.now()) {
    if (sources.length === 0) throw new RangeError('expected at least one server')
    sources.sort(sourceOrder(now()))
    this.current = sources[0]!
  }

  /** A server whose master answered after the choice joins in its place in the order. */
  add(s: Source): void {
    this.sources.push(s)
    this.sources.sort(sourceOrder(this.now()))
  }

  /** The other servers that work now, in failover order (one whose backoff has passed works again). */
  others(): Source[] {
    const now = this.now()
    return this.sources.filter(s => s !== this.current && s.downUntil <= now)
  }

  /** Back to the server a failover left, if its backoff has passed; true when the current server changed. */
  returnFromFailover(): boolean {
    const left = this.failedOverFrom
    if (!left || left.downUntil > this.now()) return false
    this.failedOverFrom = undefined
    const moved = this.current !== left
    this.current = left
    return moved
  }

  /** The server-switch rule chose `s`. */
  switchedTo(s: Source): void {
    this.current = s
    this.failedOverFrom = undefined
  }

  served(s: Source): void {
    markServed(s)
  }

  /**
   * The player opened on the current server after `from` (the one chosen first) failed its playlists, each other of
   * `more` too: counted as failovers, and playback goes back to `from` once its backoff has passed, as after a
   * failover in play. Their backoffs were marked as they failed.
   */
  openedAfter(from: Source, more: number): void {
    this.failovers += 1 + more
    if (from !== this.current) this.failedOverFrom = from
  }

  /** A request to `s` failed: it is down for its backoff; true when the current server changed (it was `s`). */
  failed(s: Source): boolean {
    const now = this.now()
    markFailed(s, now, this.backoff)
    this.sources.sort(sourceOrder(now))
    this.failovers++
    if (s !== this.current) return false
    this.current = this.sources.find(x => x !== s && x.downUntil <= now) ?? this.sources.find(x => x !== s) ?? s
    if (this.current === s) return false
    this.failedOverFrom ??= s
    return true
  }
}
