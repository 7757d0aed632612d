import { ConfigError } from '../lib/errors.js'
import { LruPolicy } from './lru-policy.js'

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
 * recency exactly. @TODO(issue-8) policies with more state (a count-min sketch,
 * ghost queues) add `snapshot(): Buffer` / `restore(Buffer)`, persisted beside
 * the disk index.
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
   * Optional, read-only: the keys `insert(·, bytes)` would evict now, in
   * eviction order ([] if it fits in free space). Prefill uses it to refuse a
   * chunk whose victims are hotter (edge/prefill.ts). A policy without it gets
   * prefill into free space only.
   */
  victims?(bytes: number): string[]
}

export type PolicyName = 'lru'

export function createPolicy(name: PolicyName, capacity: number): EvictionPolicy {
  switch (name) {
    case 'lru': return new LruPolicy(capacity)
    default: throw new ConfigError(`unknown eviction policy ${JSON.stringify(name)}; known: lru`)
  }
}
