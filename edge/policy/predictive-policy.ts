import type { EvictionPolicy, PolicySnapshot } from './policy.js'
import { SessionTracker } from './session-tracker.js'

/**
 * Predictive retention for video: keep the chunks most likely to be read
 * again soon, estimated from what playback looks like rather than from each
 * chunk's own history.
 *
 * A chunk's demand is (how often its title is started) × (the share of
 * viewers who get as far as its position), plus the live sessions about to
 * read it (edge/policy/session-tracker.ts). Title starts are pooled over all of a
 * title's chunks, so a tail chunk read once is known to be worth little
 * before it has any history, and a title's opening is worth keeping as soon
 * as the title is popular. The survival curve (reads at index i over reads at
 * index 0) is pooled over all titles: it is the abandonment curve, learned.
 * Both counters halve every `decay × capacity-in-chunks` reads, so popularity
 * follows the day.
 *
 * Eviction samples `sample` cached keys (deterministic PRNG) and drops the
 * lowest-scored one, as Redis does for LFU: scores move as counters change,
 * so a priority queue would need constant re-keying. A newcomer scoring below
 * the sampled victim is not admitted.
 *
 * Counting happens in `observe` (the edge calls it for every chunk a player
 * reads, with contentId and index, so nothing is parsed on the hit path);
 * `hit` and `miss` are no-ops. Measured (bench/rows/policies.ts, seeds 1-3):
 * the best of the policies here at 1, 5 and 20 % of the catalog on the
 * video-session trace; at 5 %, 0.875-0.908 of MIN's byte hit ratio.
 */
export interface PredictiveOptions {
  horizon: number
  idleMs: number
  /** the session tracker's key for a chunk */
  keyOf: (title: string, index: number) => string
  /** a tier key's title and index */
  parse: (key: string) => [string, number] | undefined
  /** maps a tier key to the tracker's key form */
  trackKey?: (key: string) => string
  sample?: number
  decay?: number
  /** weight of one live session about to read a chunk, in title starts */
  sessionWeight?: number
  /**
   * how many cache-fulls of chunks live sessions may protect together (the
   * tracker's budget; default 8: measured best of 1, 2, 4, 8, 16 on three
   * trace seeds, the horizon shrinking past it as sessions multiply)
   */
  budgetShare?: number
}

interface Entry {
  title: string
  index: number
  bytes: number
  slot: number
}

export class PredictivePolicy implements EvictionPolicy {
  readonly name = 'predictive'
  readonly tracker: SessionTracker
  private readonly entries = new Map<string, Entry>()
  private readonly slots: string[] = []
  private bytes = 0
  private readonly starts = new Map<string, number>()
  private surv: number[] = []
  private reads = 0
  private seed = 0x2545f491
  private readonly sample: number
  private readonly decayEvery: number
  private readonly weight: number

  constructor(public capacity: number, typicalBytes: number, private readonly opts: PredictiveOptions) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    const chunks = Math.max(1, Math.floor(capacity / Math.max(1, typicalBytes)))
    this.tracker = new SessionTracker(opts.horizon, opts.idleMs, opts.keyOf, 100_000, chunks * (opts.budgetShare ?? 8))
    this.sample = opts.sample ?? 64
    this.decayEvery = Math.max(100, chunks * (opts.decay ?? 100))
    this.weight = opts.sessionWeight ?? 20
  }

  get size(): number { return this.bytes }
  get count(): number { return this.entries.size }
  has(key: string): boolean { return this.entries.has(key) }
  hit(_key: string): void {}
  miss(_key: string): void {}

  observe(session: string, title: string, index: number, now: number, reading = false): void {
    // count a session's arrival at a chunk once, however many ranges of it the player reads
    if (!this.tracker.observe(session, title, index, now, reading)) return
    if (index === 0) this.starts.set(title, (this.starts.get(title) ?? 0) + 1)
    if (index < 100_000) {
      while (this.surv.length <= index) this.surv.push(0)
      this.surv[index]!++
    }
    if (++this.reads >= this.decayEvery) this.decay()
  }

  private decay(): void {
    this.reads = 0
    for (const [t, n] of this.starts) if (n < 0.02) this.starts.delete(t); else this.starts.set(t, n / 2)
    for (let i = 0; i < this.surv.length; i++) this.surv[i]! /= 2
  }

  private score(key: string, title: string, index: number): number {
    const s0 = this.surv[0] || 1
    const track = this.opts.trackKey
    return (this.starts.get(title) ?? 0) * ((this.surv[index] ?? 0) / s0) + this.weight * this.tracker.wanted(track ? track(key) : key)
  }

  /** The lowest-scored of `sample` slots drawn with the policy's PRNG (undefined only when `sample` is 0). */
  private sampleVictim(): { victim: string | undefined; low: number } {
    let victim: string | undefined
    let low = Infinity
    for (let j = 0; j < this.sample; j++) {
      const k = this.slots[Math.floor(this.random() * this.slots.length)]!
      const e = this.entries.get(k)!
      const s = this.score(k, e.title, e.index)
      if (s < low) { low = s; victim = k }
    }
    return { victim, low }
  }

  private random(): number {
    this.seed = (this.seed + 0x6d2b79f5) | 0
    return unit(this.seed)
  }

  insert(key: string, bytes: number): string[] {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected bytes to be a positive integer, got ${bytes}`)
    if (this.entries.has(key)) return []
    if (bytes > this.capacity) return [key]
    const [title, index] = this.opts.parse(key) ?? ['', 0]
    const mine = this.score(key, title, index)
    const evicted: string[] = []
    while (this.bytes + bytes > this.capacity) {
      const { victim, low } = this.sampleVictim()
      if (victim === undefined || mine <= low) {
        // declined: the newcomer is worth no more than what it would replace (ties keep the resident: no churn)
        evicted.push(key)
        return evicted
      }
      this.remove(victim)
      evicted.push(victim)
    }
    this.entries.set(key, { title, index, bytes, slot: this.slots.length })
    this.slots.push(key)
    this.bytes += bytes
    return evicted
  }

  /**
   * `insert`'s loop run dry: the same samples from a local copy of the PRNG,
   * over the slot array as `remove`'s swap-with-last would leave it (kept as
   * overrides of the slots that moved), so it names exactly what `insert`
   * would evict next and changes nothing.
   */
  victims(key: string, bytes: number): string[] {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected bytes to be a positive integer, got ${bytes}`)
    if (this.entries.has(key)) return []
    if (bytes > this.capacity) return [key]
    const [title, index] = this.opts.parse(key) ?? ['', 0]
    const mine = this.score(key, title, index)
    const out: string[] = []
    const moved = new Map<number, string>()
    const slotOf = new Map<string, number>()
    const at = (i: number) => moved.get(i) ?? this.slots[i]!
    let len = this.slots.length
    let seed = this.seed
    let held = this.bytes
    while (held + bytes > this.capacity) {
      let victim: string | undefined
      let low = Infinity
      for (let j = 0; j < this.sample; j++) {
        seed = (seed + 0x6d2b79f5) | 0
        const k = at(Math.floor(unit(seed) * len))
        const e = this.entries.get(k)!
        const s = this.score(k, e.title, e.index)
        if (s < low) { low = s; victim = k }
      }
      if (victim === undefined || mine <= low) return [...out, key]
      const slot = slotOf.get(victim) ?? this.entries.get(victim)!.slot
      const last = at(--len)
      if (last !== victim) { moved.set(slot, last); slotOf.set(last, slot) }
      held -= this.entries.get(victim)!.bytes
      out.push(victim)
    }
    return out
  }

  /** `insert`'s victim choice (the lowest of sampled scores) until the held bytes fit; nothing is declined. */
  resize(capacity: number): string[] {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`expected capacity to be a non-negative integer, got ${capacity}`)
    this.capacity = capacity
    const evicted: string[] = []
    while (this.bytes > capacity && this.slots.length > 0) {
      const victim = this.sampleVictim().victim ?? this.slots[0]!
      this.remove(victim)
      evicted.push(victim)
    }
    return evicted
  }

  remove(key: string): void {
    const e = this.entries.get(key)
    if (!e) return
    this.entries.delete(key)
    const last = this.slots.pop()!
    if (last !== key) {
      this.slots[e.slot] = last
      this.entries.get(last)!.slot = e.slot
    }
    this.bytes -= e.bytes
  }

  snapshot(): PolicySnapshot {
    return { policy: this.name, capacity: this.capacity, keys: this.slots.map(k => [k, this.entries.get(k)!.bytes]),
      starts: [...this.starts], surv: this.surv, reads: this.reads }
  }

  restore(snap: PolicySnapshot, sizeOf: (key: string) => number | undefined): boolean {
    if (snap.policy !== this.name || !Array.isArray(snap.keys) || !Array.isArray(snap.starts) || !Array.isArray(snap.surv)) return false
    this.entries.clear(); this.slots.length = 0; this.bytes = 0
    for (const [k] of snap.keys as [string, number][]) {
      const b = sizeOf(k)
      const p = this.opts.parse(k)
      if (b === undefined || p === undefined || this.entries.has(k)) continue
      this.entries.set(k, { title: p[0], index: p[1], bytes: b, slot: this.slots.length })
      this.slots.push(k)
      this.bytes += b
    }
    if (this.bytes > this.capacity) {
      this.entries.clear(); this.slots.length = 0; this.bytes = 0
      return false
    }
    this.starts.clear()
    for (const [t, n] of snap.starts as [string, number][]) if (typeof t === 'string' && n > 0) this.starts.set(t, n)
    this.surv = (snap.surv as unknown[]).map(n => (typeof n === 'number' && n >= 0 ? n : 0))
    this.reads = typeof snap.reads === 'number' ? snap.reads : 0
    return true
  }
}

/** splitmix-style finaliser: the PRNG's output for state `x`, in [0, 1). */
function unit(x: number): number {
  x = Math.imul(x ^ (x >>> 15), 1 | x)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
