import { ConfigError } from '../../lib/errors.js'
import { LruPolicy } from './lru-policy.js'
import { PredictivePolicy } from './predictive-policy.js'
import { S3FifoPolicy } from './s3fifo-policy.js'
import { SessionAwarePolicy } from './session-policy.js'
import { WTinyLfuPolicy } from './wtinylfu-policy.js'

/**
 * An eviction and admission policy for one cache tier. The tier owns the bytes
 * (Buffers, files); the policy owns only keys and sizes and decides which keys
 * stay within `capacity` bytes. Keeping the two apart lets a better policy
 * (W-TinyLFU, S3-FIFO, session-aware) replace LRU per tier, and lets a
 * simulator replay a trace through exactly the code the edge runs.
 *
 * The contract, which every implementation must keep:
 * - `insert` is the only call that can make room. It returns every key the
 *   tier must drop now, the offered key itself included when the policy
 *   declines to admit it. Afterwards `size <= capacity`, always.
 * - `hit` and `miss` report lookups in this tier. They are on the hit path:
 *   O(1) and allocation-free. A frequency policy counts both (a miss is the
 *   history that later justifies admission); LRU only reorders on `hit`.
 * - `remove` reports a key the tier dropped on its own (purge, a corrupt file,
 *   a failed write). It is a no-op for keys the policy does not hold.
 * - Keys are opaque strings; sizes are positive integers in bytes.
 *
 * Restart: the disk tier re-inserts its keys oldest-access first, which rebuilds
 * LRU's recency exactly. Policies with more state (a count-min sketch, ghost
 * and segment queues) also implement `snapshot()` / `restore()`: the disk tier
 * stores the snapshot in its SQLite index (edge/policy-state.ts) periodically
 * and at close, and restores it before adopting the files found at start-up,
 * so eviction quality does not reset to cold after a reboot.
 */
export interface EvictionPolicy {
  readonly name: string
  readonly capacity: number
  /** bytes of the keys held */
  readonly size: number
  readonly count: number
  has(key: string): boolean
  hit(key: string): void
  miss(key: string): void
  insert(key: string, bytes: number): string[]
  remove(key: string): void
  /**
   * Changes the capacity (a config reload, lib/reload.ts). Shrinking evicts
   * in the policy's own order (LRU's cold end, S3-FIFO's queues, W-TinyLFU's
   * probation, the lowest predicted value) until `size <= capacity`, and
   * returns the keys the tier must drop; growing returns []. State sized from
   * the capacity at construction (a sketch's width, a session budget) stays.
   */
  resize(capacity: number): string[]
  /**
   * Read-only: exactly what `insert(key, bytes)` would return now: the keys it
   * would evict, in eviction order, and `key` itself if it would decline it
   * ([] if the key fits in free space or is held already). Nothing changes:
   * not recency, not counters, not a sampling PRNG. Prefill uses it to refuse
   * a chunk whose victims are hotter (edge/prefill/prefill.ts); it is not on the hit
   * path, and may cost O(keys held).
   */
  victims(key: string, bytes: number): string[]
  /**
   * Optional persistence. `snapshot` is a JSON-able description of the queues
   * (and the sketch), oldest first. `restore` rebuilds from one for the keys
   * `sizeOf` knows (the files that survived), skipping the rest; it returns
   * false and leaves the policy empty if the snapshot does not fit (another
   * policy, another capacity), and the tier then falls back to re-inserting.
   */
  snapshot?(): PolicySnapshot
  restore?(snap: PolicySnapshot, sizeOf: (key: string) => number | undefined): boolean
  /**
   * Session-aware policies: a player session read chunk `index` of `title` (see edge/policy/session-policy.ts);
   * `reading`: the read stopped short of the chunk's end, so the session will read more of it (session-tracker.ts).
   */
  observe?(session: string, title: string, index: number, now: number, reading?: boolean): void
}

export interface PolicySnapshot {
  policy: string
  capacity: number
  [part: string]: unknown
}

export const POLICY_NAMES = ['lru', 's3fifo', 'wtinylfu', 'session', 'predictive'] as const
export type PolicyName = typeof POLICY_NAMES[number]

export interface PolicyOptions {
  /** the usual entry size (the chunk size), to size the frequency sketch and the session budget */
  typicalBytes: number
  /** chunks ahead of a session's position that it protects (session policy) */
  sessionHorizon?: number
  /** a session idle this long stops protecting anything (session policy) */
  sessionIdleMs?: number
}

/**
 * The session tracker's key for chunk `index` of `title` (a file name: a
 * contentId, or `contentId/rid` for a rendition, edge/title.ts). The tiers key
 * chunks as `<file>/index/sha256`; a session only knows the file and index,
 * so the session policy maps tier keys to this form (dropping the digest) when
 * it asks whether a chunk is wanted, which happens only while evicting.
 */
export function sessionKey(title: string, index: number): string {
  return `${title}/${index}`
}

export function createPolicy(name: PolicyName, capacity: number, opts: PolicyOptions = { typicalBytes: 64 * 1024 ** 2 }): EvictionPolicy {
  switch (name) {
    case 'lru': return new LruPolicy(capacity)
    case 's3fifo': return new S3FifoPolicy(capacity)
    case 'wtinylfu': return new WTinyLfuPolicy(capacity, opts.typicalBytes)
    case 'session': return new SessionAwarePolicy(capacity, opts.typicalBytes, {
      horizon: opts.sessionHorizon ?? 10, idleMs: opts.sessionIdleMs ?? 180_000, keyOf: sessionKey, trackKey: tierKeyToSession })
    case 'predictive': return new PredictivePolicy(capacity, opts.typicalBytes, {
      horizon: opts.sessionHorizon ?? 10, idleMs: opts.sessionIdleMs ?? 180_000, keyOf: sessionKey, trackKey: tierKeyToSession, parse: parseTierKey })
    default: throw new ConfigError(`unknown eviction policy ${JSON.stringify(name)}; known: ${POLICY_NAMES.join(', ')}`)
  }
}

/** `<file>/index/sha256` → `<file>/index`; keys without a digest part pass unchanged. */
export function tierKeyToSession(key: string): string {
  const last = key.lastIndexOf('/')
  return last > 0 && key.indexOf('/') < last ? key.slice(0, last) : key
}

/**
 * A tier key's file and index: `contentId/index/sha256` → [contentId, index],
 * `contentId/rid/index/sha256` → [`contentId/rid`, index] (the digest is always
 * the last part); the digest-less `contentId/index` → [contentId, index].
 */
export function parseTierKey(key: string): [string, number] | undefined {
  const last = key.lastIndexOf('/')
  if (last <= 0) return undefined
  const prev = key.lastIndexOf('/', last - 1)
  const [file, raw] = prev < 0 ? [key.slice(0, last), key.slice(last + 1)] : [key.slice(0, prev), key.slice(prev + 1, last)]
  const index = Number(raw)
  return file.length > 0 && raw.length > 0 && Number.isSafeInteger(index) && index >= 0 ? [file, index] : undefined
}
