import type { EvictionPolicy } from '../../edge/policy/policy.js'
import { LruPolicy } from '../../edge/policy/lru-policy.js'
import { S3FifoPolicy } from '../../edge/policy/s3fifo-policy.js'
import { WTinyLfuPolicy } from '../../edge/policy/wtinylfu-policy.js'
import { SessionAwarePolicy } from '../../edge/policy/session-policy.js'
import { PredictivePolicy } from '../../edge/policy/predictive-policy.js'
import { beladyHits } from './belady.js'
import { chunkKey, type TraceEvent } from './trace.js'

/**
 * Replays a trace through the policies the edge runs (the same classes, not
 * copies) and through MIN, at a cache size given in chunks. All chunks count
 * as equal-size here, where MIN is the exact optimum, so byte hit ratio equals
 * hit ratio.
 */
export interface PolicyResult {
  policy: string
  hits: number
  requests: number
  hitRatio: number
  /** hitRatio / MIN's */
  ofOptimum: number
}

/** A policy, and for session-aware ones the hook that tells it who is watching what. */
export type Simulated = EvictionPolicy & { observe?: (session: string, title: string, index: number, now: number) => void }
export type PolicyFactory = (capacityChunks: number) => Simulated

/** Session horizon for the simulation: the chunks a viewer reads in the next ten minutes at one chunk a minute. */
export const SESSION_HORIZON = 10

export const POLICIES: Record<string, PolicyFactory> = {
  lru: c => new LruPolicy(c),
  s3fifo: c => new S3FifoPolicy(c),
  wtinylfu: c => new WTinyLfuPolicy(c, 1),
  session: c => new SessionAwarePolicy(c, 1, {
    horizon: SESSION_HORIZON, idleMs: 3 * 60_000, keyOf: (title, index) => chunkKey(Number(title), index) }),
  predictive: c => new PredictivePolicy(c, 1, {
    horizon: SESSION_HORIZON, idleMs: 3 * 60_000, keyOf: (title, index) => chunkKey(Number(title), index), parse: traceKeyParts }),
}

/** `t<title>/<index>` → [title, index], as the trace's sessions name them. */
function traceKeyParts(key: string): [string, number] | undefined {
  const slash = key.indexOf('/')
  return slash > 1 ? [key.slice(1, slash), Number(key.slice(slash + 1))] : undefined
}

export function replay(trace: readonly TraceEvent[], policy: Simulated): number {
  let hits = 0
  for (const e of trace) {
    policy.observe?.(String(e.session), String(e.title), e.index, e.t)
    if (policy.has(e.key)) {
      hits++
      policy.hit(e.key)
    } else {
      policy.miss(e.key)
      policy.insert(e.key, 1)
    }
  }
  return hits
}

export function compare(trace: readonly TraceEvent[], capacityChunks: number, policies: Record<string, PolicyFactory> = POLICIES): PolicyResult[] {
  const n = trace.length
  const min = beladyHits(trace.map(e => e.key), capacityChunks)
  const out: PolicyResult[] = Object.entries(policies).map(([name, make]) => {
    const hits = replay(trace, make(capacityChunks))
    return { policy: name, hits, requests: n, hitRatio: hits / n, ofOptimum: min ? hits / min : 1 }
  })
  out.push({ policy: 'min', hits: min, requests: n, hitRatio: min / n, ofOptimum: 1 })
  return out
}
