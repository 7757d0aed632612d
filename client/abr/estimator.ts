/**
 * Throughput estimate from download samples, as hls.js's
 * EwmaBandWidthEstimator does: two exponentially weighted moving averages of
 * the measured bits per second, a fast one (half-life 3 s) and a slow one
 * (9 s), and the estimate the lower of the two. So a falling link pulls the
 * estimate down within a few seconds (the fast average), and a rising one
 * lifts it only once it has lasted (the slow average): down fast, up with care.
 *
 * One departure from hls.js: a sample is weighted by the time since the
 * previous one ended (its download and any idle time before it), not by its
 * download time alone, so the estimate ages with the clock. With hls.js's
 * weighting, a player idling on a full buffer whose downloads have become
 * fast gives them almost no weight: in simulation a link that rose from 1 to
 * 10 Mb/s took about a minute to be believed; weighted by the clock, about
 * ten seconds. A slow download still weighs its whole (long) duration, so a
 * falling link is believed as fast as before.
 *
 * The averages start at zero, so each is divided by 1 − α^(total weight)
 * (the bias correction of an EWMA started at zero): the first sample is the
 * estimate, not a fraction of it.
 *
 * Times are the player's clock: seconds of scenario time (wall time × the
 * play speed in a load test), so an estimate compares directly with a
 * rendition's bits per second of media.
 */
class Ewma {
  private readonly alpha: number
  private estimate = 0
  private totalWeight = 0

  constructor(halfLifeS: number) {
    this.alpha = Math.exp(Math.log(0.5) / halfLifeS)
  }

  sample(weight: number, value: number): void {
    const a = this.alpha ** weight
    this.estimate = value * (1 - a) + a * this.estimate
    this.totalWeight += weight
  }

  get value(): number {
    const zeroFactor = 1 - this.alpha ** this.totalWeight
    return zeroFactor > 0 ? this.estimate / zeroFactor : this.estimate
  }
}

export interface EstimatorOptions {
  fastHalfLifeS: number
  slowHalfLifeS: number
}

export const ESTIMATOR_DEFAULTS: EstimatorOptions = { fastHalfLifeS: 3, slowHalfLifeS: 9 }

/** a download shorter than this is counted as this long: a tiny, cached answer says little about the link */
const MIN_SAMPLE_S = 0.005

export class ThroughputEstimator {
  private readonly fast: Ewma
  private readonly slow: Ewma
  samples = 0
  /** when the last sample was taken (seconds, the caller's clock) */
  lastAt = -Infinity

  constructor(o: EstimatorOptions = ESTIMATOR_DEFAULTS) {
    this.fast = new Ewma(o.fastHalfLifeS)
    this.slow = new Ewma(o.slowHalfLifeS)
  }

  /** A download of `bytes` that took `seconds`, finished at `at`. */
  sample(bytes: number, seconds: number, at: number): void {
    if (!(bytes > 0)) return
    const s = Math.max(MIN_SAMPLE_S, seconds)
    const bps = (bytes * 8) / s
    // weighted by the time since the previous sample: its download and any idle time before it
    const weight = Math.max(s, Number.isFinite(this.lastAt) ? at - this.lastAt : s)
    this.fast.sample(weight, bps)
    this.slow.sample(weight, bps)
    this.samples++
    this.lastAt = at
  }

  /** bits per second, or undefined before the first sample */
  get estimate(): number | undefined {
    return this.samples === 0 ? undefined : Math.min(this.fast.value, this.slow.value)
  }
}
