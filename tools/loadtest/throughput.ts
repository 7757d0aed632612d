/**
 * The load test's throughput over time (report.ts `TimelinePoint.mbps`,
 * `rps`), for both modes (http-mode.ts, players-mode.ts).
 *
 * A point is taken about every second by a timer, and once at the end of the
 * run. Its rates are over the interval it actually spans, since the point
 * before it (or the start): a loaded event loop fires a 1 s timer late, and
 * the bytes of an interval of 1.1 s are not its bytes per second. So the
 * rates times their intervals add up to every byte received, the end's
 * part-second included however short, as long as anything came in it.
 */
export interface Rates {
  t: number
  mbps: number
  rps: number
}

export class Throughput {
  private lastT = 0
  private lastBytes = 0
  private lastN = 0

  /** A point `t` seconds after the start, with `bytes` received (and `n` answers) in all so far: the rates since the last point. */
  point(t: number, bytes: number, n = 0): Rates {
    const dt = Math.max(t - this.lastT, 1e-9)
    const r = { t, mbps: (bytes - this.lastBytes) / 1e6 / dt, rps: (n - this.lastN) / dt }
    this.lastT = t
    this.lastBytes = bytes
    this.lastN = n
    return r
  }

  /** The run's end: a last point for what came since the last one, or none if nothing did within 50 ms of it. */
  end(t: number, bytes: number, n = 0): Rates | undefined {
    const dt = t - this.lastT
    if (dt <= 0 || (dt <= 0.05 && bytes === this.lastBytes && n === this.lastN)) return undefined
    return this.point(t, bytes, n)
  }
}
