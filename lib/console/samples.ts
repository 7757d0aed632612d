/**
 * The console's memory of the last hour: one sample of a few cumulative
 * counters every `everyMs` (10 s by default), at most `capacity` of them (360:
 * an hour), in a ring, so the memory is bounded whatever the uptime. The
 * series the page draws are per-interval differences of neighbouring samples
 * (a rate, or a ratio of two differences), so a counter's absolute value
 * never matters and a restart starts an empty chart rather than a wrong one.
 *
 * The figure for "now" is not waited for: `series` ends with the interval
 * from the newest sample to the counters as they are at the request, so a
 * page opened a second after start already draws one point.
 */
export type Sample<K extends string> = { at: number; v: Record<K, number> }

export class SampleRing<K extends string> {
  private readonly ring: Sample<K>[] = []
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly read: () => Promise<Record<K, number>>, readonly capacity = 360, readonly everyMs = 10_000) {}

  async sample(now = Date.now()): Promise<void> {
    const v = await this.read()
    this.ring.push({ at: now, v })
    if (this.ring.length > this.capacity) this.ring.shift()
  }

  start(): void {
    void this.sample().catch(() => {})
    this.timer = setInterval(() => void this.sample().catch(() => {}), this.everyMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  get size(): number {
    return this.ring.length
  }

  /** The samples, oldest first, and `now` (the counters as they are) at the end. */
  async withNow(now = Date.now()): Promise<Sample<K>[]> {
    const out = [...this.ring]
    const last = out[out.length - 1]
    if (last === undefined || now - last.at >= 100) out.push({ at: now, v: await this.read() })
    return out
  }
}

/** Per-interval points from neighbouring samples: `f(difference of each key, seconds)`, at the interval's end; null skips. */
export function intervals<K extends string>(samples: readonly Sample<K>[], f: (d: Record<K, number>, secs: number) => number | null): [number, number][] {
  const out: [number, number][] = []
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!
    const b = samples[i]!
    const secs = (b.at - a.at) / 1000
    if (secs <= 0) continue
    const d = {} as Record<K, number>
    for (const k in b.v) d[k] = b.v[k] - (a.v[k] ?? 0)
    const y = f(d, secs)
    if (y !== null && Number.isFinite(y)) out.push([b.at, y])
  }
  return out
}
