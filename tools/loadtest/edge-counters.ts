import { request } from 'undici'
import { HIT_RESULTS } from '../../lib/metrics.js'
import type { TimelinePoint } from './report.js'

/**
 * The servers' own byte counters, read from /metrics before, during and after
 * a run, so the byte hit ratio and origin offload reported are what the servers
 * counted, not what the load generator guessed.
 *
 * Byte hit ratio: (ram_hit + disk_hit) / all of the edges'
 * reelcdn_edge_bytes_served_total, as the edge defines it (lib/metrics.ts): a
 * byte read from a fill in flight (coalesced) is no hit. Origin offload: the
 * share of the bytes the viewers received that the origin did not send. With
 * the router's /metrics, that is 1 - its reelcdn_router_bytes_served_total /
 * viewer bytes (the router counts both edge fills and players reading it
 * directly); without it, 1 - the edges' upstream bytes / the edges' bytes
 * served. Both are given everywhere one is: the first says how often players
 * found bytes in a cache, the second what crossed the upstream link for them
 * (readahead and prefill included, shared fills credited).
 */
export interface EdgeCounters {
  served: number
  /** bytes served from RAM or disk */
  hitBytes: number
  upstream: number
}

export interface ServerCounters extends EdgeCounters {
  /** the router's content bytes sent (to edges and players); null without a router */
  routerServed: number | null
}

export interface MetricsTargets {
  edges: string[]
  router?: string | undefined
}

export interface CacheFigures {
  byteHitRatio: number | null
  originOffload: number | null
  edgeBytesServed: number
  upstreamBytes: number
  routerBytesServed: number | null
}

const value = (line: string) => Number(line.slice(line.lastIndexOf(' ') + 1))
const HIT = new RegExp(`result="(${HIT_RESULTS.join('|')})"`)

export function parseEdgeCounters(text: string): EdgeCounters {
  const out: EdgeCounters = { served: 0, hitBytes: 0, upstream: 0 }
  for (const line of text.split('\n')) {
    if (line.startsWith('reelcdn_edge_bytes_served_total{')) {
      const v = value(line)
      out.served += v
      if (HIT.test(line)) out.hitBytes += v
    } else if (line.startsWith('reelcdn_edge_upstream_bytes_total')) out.upstream += value(line)
  }
  return out
}

export function parseRouterServed(text: string): number {
  let served = 0
  for (const line of text.split('\n')) if (/^reelcdn_router_bytes_served_total[ {]/.test(line)) served += value(line)
  return served
}

async function metricsText(u: string): Promise<string> {
  const res = await request(`${u.replace(/\/$/, '')}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 })
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`${u}/metrics answered ${res.statusCode}`)
  }
  return res.body.text()
}

export async function readEdgeCounters(urls: string[]): Promise<EdgeCounters> {
  const all = await Promise.all(urls.map(async u => parseEdgeCounters(await metricsText(u))))
  return all.reduce((a, b) => ({ served: a.served + b.served, hitBytes: a.hitBytes + b.hitBytes, upstream: a.upstream + b.upstream }),
    { served: 0, hitBytes: 0, upstream: 0 })
}

export async function readCounters(m: MetricsTargets): Promise<ServerCounters> {
  const [edges, routerServed] = await Promise.all([readEdgeCounters(m.edges), m.router ? metricsText(m.router).then(parseRouterServed) : null])
  return { ...edges, routerServed }
}

/** `viewerBytes`: what the viewers received (players mode); the edges' bytes served when not given. */
export function cacheDelta(before: EdgeCounters | ServerCounters, after: EdgeCounters | ServerCounters, viewerBytes?: number): CacheFigures {
  const served = after.served - before.served
  const hits = after.hitBytes - before.hitBytes
  const upstream = after.upstream - before.upstream
  const b = (before as ServerCounters).routerServed
  const a = (after as ServerCounters).routerServed
  const routerServed = a === null || a === undefined || b === null || b === undefined ? null : a - b
  const viewers = viewerBytes ?? served
  return {
    byteHitRatio: served > 0 ? hits / served : null,
    originOffload: routerServed !== null ? (viewers > 0 ? 1 - routerServed / viewers : null) : served > 0 ? 1 - upstream / served : null,
    edgeBytesServed: served,
    upstreamBytes: upstream,
    routerBytesServed: routerServed,
  }
}

/** One sample's figures: this interval's and since start(); nulls when unknown. */
export interface CacheSample {
  interval: number | null
  soFar: number | null
  offload: number | null
  offloadSoFar: number | null
}

const UNKNOWN: CacheSample = { interval: null, soFar: null, offload: null, offloadSoFar: null }

/**
 * Reads the counters once a second while a run goes, for the hit ratio and
 * the origin offload over time (each interval's) and so far (since the
 * start). A read that fails or is still pending when the next is due is
 * skipped: the figures are then `null`, never a guess.
 */
export class CounterSampler {
  private first: ServerCounters | undefined
  private last: ServerCounters | undefined
  private lastViewers = 0
  private pending = false

  constructor(readonly targets: MetricsTargets) {}

  async start(): Promise<ServerCounters> {
    this.first = this.last = await readCounters(this.targets)
    return this.first
  }

  /**
   * This interval's byte hit ratio and offload and those since start(), or
   * nulls when unknown. `viewerBytes`: what the viewers received since
   * start() (players mode), for the offload against the router's bytes.
   */
  async sample(viewerBytes?: number): Promise<CacheSample> {
    if (this.pending || !this.first) return UNKNOWN
    this.pending = true
    try {
      const now = await readCounters(this.targets)
      const interval = cacheDelta(this.last!, now, viewerBytes === undefined ? undefined : viewerBytes - this.lastViewers)
      const soFar = cacheDelta(this.first, now, viewerBytes)
      this.last = now
      this.lastViewers = viewerBytes ?? 0
      return { interval: interval.byteHitRatio, soFar: soFar.byteHitRatio, offload: interval.originOffload, offloadSoFar: soFar.originOffload }
    } catch {
      return UNKNOWN
    } finally {
      this.pending = false
    }
  }

  async finish(viewerBytes?: number): Promise<CacheFigures> {
    if (!this.first) throw new Error('CounterSampler.finish() before start()')
    return cacheDelta(this.first, await readCounters(this.targets), viewerBytes)
  }
}

/** Fills a timeline point's hit ratios and offloads from a fresh sample, then calls `done`; at once, with nulls left, without a sampler. */
export function sampleInto(sampler: CounterSampler | undefined, p: TimelinePoint, done: () => void, viewerBytes?: number): void {
  if (!sampler) return done()
  void sampler.sample(viewerBytes).then(h => {
    p.hitRatio = h.interval
    p.hitRatioSoFar = h.soFar
    p.offload = h.offload
    p.offloadSoFar = h.offloadSoFar
    done()
  })
}

/**
 * A sampler started on `m`, or the reason it could not start (a target with no
 * /metrics, say): the run goes on without cache figures and says why.
 */
export async function startSampler(m: MetricsTargets | undefined): Promise<{ sampler?: CounterSampler; error?: string }> {
  if (!m) return {}
  const sampler = new CounterSampler(m)
  try {
    await sampler.start()
    return { sampler }
  } catch (err) {
    return { error: `no cache figures: ${(err as Error).message}` }
  }
}
