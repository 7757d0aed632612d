/**
 * When to leave a server for quality (issue 15: "when quality stays low on
 * one server, it switches server"): a pure rule over each server's
 * throughput estimate, so it is tested in simulated time.
 *
 * The rule, checked before each video segment:
 *   1. Quality is *low* on the current server while its estimate cannot
 *      sustain the top rung. Low must last `lowForS` (20 s) without a break
 *      before anything happens: a dip is the ABR rule's business, not a
 *      reason to move.
 *   2. Then, if another server's recent estimate (from this session, at most
 *      `historyS` old: the server played earlier, or a trial) is at least
 *      `gain` (1.3×) the current one and sustains a higher rung, the player
 *      switches to the first such server in failover order (the /v1/play
 *      list's edges in order, the origin last; client/source-choice.ts).
 *   3. Otherwise it asks for evidence: the next segment is fetched as a
 *      *trial* from the first server in that order with no recent estimate,
 *      at most once per `retryS` (60 s). The trial is the probe: its
 *      throughput is that server's estimate, and step 2 acts on it at the
 *      next segment. Through the viewer's own link a trial measures
 *      min(link, that server), so when the viewer's link is the bottleneck
 *      every server measures alike and the player stays; one trial a minute
 *      is all that costs.
 * A switch restarts the low timer; the server left keeps its estimate as
 * history, so a player that moved to a server that turns out worse moves
 * back only once the new one has been low for `lowForS` and the old one's
 * estimate is still fresh and better.
 */
export interface ServerSwitchOptions {
  lowForS: number
  gain: number
  historyS: number
  retryS: number
}

export const SERVER_SWITCH_DEFAULTS: ServerSwitchOptions = { lowForS: 20, gain: 1.3, historyS: 120, retryS: 60 }

export interface ServerView<K> {
  key: K
  /** bits per second; undefined when never measured */
  bps: number | undefined
  /** when the estimate was last sampled */
  at: number
}

export type SwitchDecision<K> =
  | { kind: 'stay' }
  | { kind: 'switch'; to: K }
  | { kind: 'trial'; to: K }

export class ServerSwitch<K> {
  private lowSince: number | undefined
  private lastTrialAt = -Infinity

  constructor(readonly o: ServerSwitchOptions = SERVER_SWITCH_DEFAULTS) {
    for (const k of ['lowForS', 'historyS', 'retryS'] as const) if (!(o[k] >= 0)) throw new RangeError(`expected ${k} >= 0, got ${o[k]}`)
    if (!(o.gain >= 1)) throw new RangeError(`expected gain >= 1, got ${o.gain}`)
  }

  /**
   * `others` in failover order, failed servers left out; `rungOf` maps a
   * throughput to the rung it sustains; `top` is the top rung's index.
   */
  decide(now: number, current: ServerView<K>, others: readonly ServerView<K>[], rungOf: (bps: number) => number, top: number): SwitchDecision<K> {
    if (current.bps === undefined || rungOf(current.bps) >= top) {
      this.lowSince = undefined
      return { kind: 'stay' }
    }
    this.lowSince ??= now
    if (now - this.lowSince < this.o.lowForS) return { kind: 'stay' }
    const curBps = current.bps
    const curRung = rungOf(curBps)
    const fresh = (v: ServerView<K>) => v.bps !== undefined && now - v.at <= this.o.historyS
    const better = others.find(v => fresh(v) && v.bps! >= this.o.gain * curBps && rungOf(v.bps!) > curRung)
    if (better) {
      this.lowSince = undefined
      return { kind: 'switch', to: better.key }
    }
    if (now - this.lastTrialAt < this.o.retryS) return { kind: 'stay' }
    const unknown = others.find(v => !fresh(v))
    if (!unknown) return { kind: 'stay' }
    this.lastTrialAt = now
    return { kind: 'trial', to: unknown.key }
  }

  /** The player moved for another reason (a failover): the low timer starts again. */
  reset(): void {
    this.lowSince = undefined
  }
}
