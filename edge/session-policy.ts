import type { EvictionPolicy } from './policy.js'
import { SessionTracker } from './session-tracker.js'
import { WTinyLfuPolicy } from './wtinylfu-policy.js'

/**
 * Session-aware retention on top of W-TinyLFU: frequency decides as usual,
 * except that a chunk a live session is about to read (a trailing viewer of
 * the same title, within `horizon` chunks) is kept over one no live session
 * will reach, and wins admission over it. The edge feeds `observe` from the
 * player requests it serves (a session is a play token's viewer, or a client
 * address and title).
 */
export interface SessionPolicyOptions {
  horizon: number
  idleMs: number
  keyOf: (title: string, index: number) => string
}

export class SessionAwarePolicy implements EvictionPolicy {
  readonly name = 'session'
  readonly tracker: SessionTracker
  readonly base: WTinyLfuPolicy

  constructor(readonly capacity: number, typicalBytes: number, opts: SessionPolicyOptions) {
    this.tracker = new SessionTracker(opts.horizon, opts.idleMs, opts.keyOf)
    this.base = new WTinyLfuPolicy(capacity, typicalBytes, 0.01, k => this.tracker.wanted(k))
  }

  observe(session: string, title: string, index: number, now: number): void {
    this.tracker.observe(session, title, index, now)
  }

  get size(): number { return this.base.size }
  get count(): number { return this.base.count }
  has(key: string): boolean { return this.base.has(key) }
  hit(key: string): void { this.base.hit(key) }
  miss(key: string): void { this.base.miss(key) }
  insert(key: string, bytes: number): string[] { return this.base.insert(key, bytes) }
  remove(key: string): void { this.base.remove(key) }
}
