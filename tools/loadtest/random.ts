/**
 * Seeded randomness for reproducible load and traces: mulberry32 (lib/random.ts),
 * a Zipf sampler over ranks by inverse CDF, and the exponential draw for arrivals.
 */
import { mulberry32, type Rng } from '../../lib/random.js'

export { mulberry32, type Rng }

/** Draws ranks 0..n-1 with P(k) ∝ 1/(k+1)^s. */
export class Zipf {
  private readonly cdf: Float64Array

  constructor(readonly n: number, readonly s: number) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`expected a catalog of at least 1 title, got ${n}`)
    if (!(s >= 0)) throw new RangeError(`expected a Zipf exponent >= 0, got ${s}`)
    this.cdf = new Float64Array(n)
    let sum = 0
    for (let k = 0; k < n; k++) this.cdf[k] = sum += 1 / (k + 1) ** s
    for (let k = 0; k < n; k++) this.cdf[k]! /= sum
  }

  sample(rng: Rng): number {
    const u = rng()
    let lo = 0
    let hi = this.n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  probability(k: number): number {
    return this.cdf[k]! - (k === 0 ? 0 : this.cdf[k - 1]!)
  }
}

export function exponential(rng: Rng, mean: number): number {
  return -Math.log(1 - rng()) * mean
}
