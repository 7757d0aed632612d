import type { EvictionPolicy, PolicySnapshot } from './policy.js'
import { S3FifoPolicy } from './s3fifo-policy.js'
import { SessionTracker } from './session-tracker.js'
import { WTinyLfuPolicy } from './wtinylfu-policy.js'

/**
 * Session-aware retention on top of a frequency policy (S3-FIFO by default,
 * W-TinyLFU selectable): the base policy decides as usual, except that a chunk
 * a live session is about to read (a trailing viewer of the same title, within
 * `horizon` chunks) is kept over one no live session will reach. The edge feeds
 * `observe` from the player requests it serves (a session is a play token's
 * viewer, or a client address and title).
 */
export interface SessionPolicyOptions {
  horizon: number
  idleMs: number
  keyOf: (title: string, index: number) => string
  base?: 's3fifo' | 'wtinylfu'
  /** how many cache-fulls of chunks live sessions may protect together, counting overlaps (default 4, the best measured) */
  protectShare?: number
  /** maps a tier key to the tracker's key form (the edge drops the digest: sessions know contentId and index only) */
  trackKey?: (key: string) => string
}

export class SessionAwarePolicy implements EvictionPolicy {
  readonly name = 'session'
  readonly tracker: SessionTracker
  readonly base: EvictionPolicy

  constructor(public capacity: number, typicalBytes: number, opts: SessionPolicyOptions) {
    const budget = Math.floor((capacity / Math.max(1, typicalBytes)) * (opts.protectShare ?? 4))
    this.tracker = new SessionTracker(opts.horizon, opts.idleMs, opts.keyOf, 100_000, budget)
    const track = opts.trackKey
    const wanted = track ? (k: string) => this.tracker.wanted(track(k)) : (k: string) => this.tracker.wanted(k)
    this.base = opts.base === 'wtinylfu' ? new WTinyLfuPolicy(capacity, typicalBytes, 0.01, wanted) : new S3FifoPolicy(capacity, 0.1, wanted)
  }

  observe(session: string, title: string, index: number, now: number, reading = false): void {
    this.tracker.observe(session, title, index, now, reading)
  }

  get size(): number { return this.base.size }
  get count(): number { return this.base.count }
  has(key: string): boolean { return this.base.has(key) }
  hit(key: string): void { this.base.hit(key) }
  miss(key: string): void { this.base.miss(key) }
  insert(key: string, bytes: number): string[] { return this.base.insert(key, bytes) }
  remove(key: string): void { this.base.remove(key) }
  victims(key: string, bytes: number): string[] { return this.base.victims(key, bytes) }
  /** The base policy evicts; the tracker's budget stays the one sized at start. */
  resize(capacity: number): string[] {
    const out = this.base.resize(capacity)
    this.capacity = capacity
    return out
  }
  /** Live sessions are not persisted: after a restart they are gone or will announce themselves again. */
  snapshot(): PolicySnapshot { return { ...this.base.snapshot!(), policy: this.name } }
  restore(snap: PolicySnapshot, sizeOf: (key: string) => number | undefined): boolean {
    return snap.policy === this.name && this.base.restore!({ ...snap, policy: this.base.name }, sizeOf)
  }
}
