import type { EvictionPolicy } from '../../edge/policy.js'
import { LruPolicy } from '../../edge/lru-policy.js'
import { S3FifoPolicy } from '../../edge/s3fifo-policy.js'
import { WTinyLfuPolicy } from '../../edge/wtinylfu-policy.js'
import { beladyHits } from './belady.js'
import type { TraceEvent } from './trace.js'

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

export type PolicyFactory = (capacityChunks: number) => EvictionPolicy

export const POLICIES: Record<string, PolicyFactory> = {
  lru: c => new LruPolicy(c),
  s3fifo: c => new S3FifoPolicy(c),
  wtinylfu: c => new WTinyLfuPolicy(c, 1),
}

export function replay(trace: readonly TraceEvent[], policy: EvictionPolicy): number {
  let hits = 0
  for (const e of trace) {
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
