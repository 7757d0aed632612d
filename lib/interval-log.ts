/**
 * A warning for a fault that would otherwise be logged once per request (an
 * upstream that keeps failing the same way): the first occurrence in each
 * interval is logged, with how many were left out since the one before; the
 * rest are not. The caller counts every occurrence in a metric, so the log
 * says that something is wrong and the metric says how often.
 *
 * One IntervalLog per source (an upstream, say) and kind of fault: a second
 * upstream failing is news even while the first one's warnings are held back.
 */
export class IntervalLog {
  private last = -Infinity
  private skipped = 0

  constructor(readonly intervalMs: number, private readonly now: () => number = () => performance.now()) {}

  /** Undefined: do not log this one. Otherwise log it, with `skipped` (those not logged since the last). */
  take(): { skipped: number } | undefined {
    const t = this.now()
    if (t - this.last < this.intervalMs) {
      this.skipped++
      return undefined
    }
    this.last = t
    const skipped = this.skipped
    this.skipped = 0
    return { skipped }
  }
}
