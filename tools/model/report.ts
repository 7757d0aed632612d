import type { Deployment } from './deployment.js'
import type { Model } from './engine.js'
import type { FailureEvent, Tally } from './tally.js'

/**
 * A model run's figures from its tally. Ratios are of bytes (every chunk has
 * the same size):
 * - byteHitRatio: the site's bytes not fetched from the origin over the bytes
 *   its viewers read (a peer fill counts as a hit of the site: the site
 *   acting as one cache is the point);
 * - edgeHitRatio: bytes served from the serving edge's own cache;
 * - spread: bytes served by the busiest live edge over the site's mean
 *   (weighted by capacity), for the whole run after the warm-up;
 * - peakActiveSpread: the same for active sessions, the worst instant
 *   sampled at window ends (what the bounded-load rule bounds).
 * Failures are judged on the windows of the site that takes the traffic: the
 * hit ratio of the hour before against the windows after; the dip is the
 * worst window's drop in the hour after. A failed edge does not come back,
 * so the site settles on less cache than before: "settled" is the hit ratio
 * of the last third of the time between the worst window and the last
 * arrival, and recovery is the time from the failure to the end of the first
 * window, at or after the worst one, within one point of it.
 */
export interface Figures {
  requests: number
  bytes: number
  byteHitRatio: number
  edgeHitRatio: number
  originBytes: number
  peerBytes: number
  spread: number
  peakActiveSpread: number
}

export interface FailureFigures {
  label: string
  atMin: number
  site: string
  movedSessions: number
  keysMoved: number | null
  /** in the hour before: the failed edge's share of its site's bytes; a failed site's share of its and the judged site's */
  trafficShareBefore: number
  /** the judged site's bytes in the hour after over the hour before */
  loadAfter: number
  hitBefore: number
  hitWorst: number
  /** the level the site settles on after the failure (null: the run ended too soon after it) */
  hitSettled: number | null
  dip: number
  recoveryMin: number | null
  /** origin bytes in the hour after, beyond the hour before's rate */
  extraOriginBytes: number
}

export interface ModelResult {
  sessions: number
  reads: number
  simulatedHours: number
  warmupMin: number
  overall: Figures & { prefillBytes: number; unservedBytes: number }
  sites: (Figures & { id: string })[]
  failures: FailureFigures[]
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : 0)

function siteFigures(m: Model, t: Tally, s: number): Figures {
  const cb = m.dep.chunkBytes
  const first = m.firstEdge(s)
  const n = m.dep.sites[s]!.edges.length
  let served = 0
  let weight = 0
  // the live edges; a failed site's figures are those of all its edges (while it ran)
  const counted = (e: number) => m.alive[e] || !m.siteAlive[s]
  for (let e = first; e < first + n; e++) if (counted(e)) { served += t.served[e]!; weight += m.weight[e]! }
  let spread = 0
  for (let e = first; e < first + n; e++) if (counted(e)) spread = Math.max(spread, ratio(t.served[e]!, (served * m.weight[e]!) / weight))
  return {
    requests: t.req[s]!, bytes: t.req[s]! * cb, byteHitRatio: 1 - ratio(t.origin[s]!, t.req[s]!), edgeHitRatio: ratio(t.hits[s]!, t.req[s]!),
    originBytes: t.origin[s]! * cb, peerBytes: t.peer[s]! * cb, spread, peakActiveSpread: t.peakActiveSpread[s]!,
  }
}

function failureFigures(m: Model, t: Tally, ev: FailureEvent): FailureFigures {
  const dep: Deployment = m.dep
  const W = t.windowMs
  const wT = Math.floor(ev.atMs / W)
  const hour = Math.max(1, Math.round(3_600_000 / W))
  const s = ev.site
  const f = ev.failure
  const out: FailureFigures = { label: f.label, atMin: ev.atMs / 60_000, site: s >= 0 ? dep.sites[s]!.id : 'none', movedSessions: ev.movedSessions,
    keysMoved: ev.keysMoved, trafficShareBefore: 0, loadAfter: 0, hitBefore: 0, hitWorst: 0, hitSettled: null, dip: 0, recoveryMin: null, extraOriginBytes: 0 }
  if (s < 0) return out
  const sum = (from: number, to: number, pick: (w: (typeof t.windows)[number]) => number) => {
    let x = 0
    for (let i = Math.max(0, from); i < Math.min(to, t.windows.length); i++) x += pick(t.windows[i]!)
    return x
  }
  const req = sum(wT - hour, wT, w => w.req[s]!)
  out.hitBefore = 1 - ratio(sum(wT - hour, wT, w => w.origin[s]!), req)
  if (f.kind === 'edge') {
    const e = m.firstEdge(f.site) + f.edge
    out.trafficShareBefore = ratio(sum(wT - hour, wT, w => w.served[e]!), req)
  } else {
    const moved = sum(wT - hour, wT, w => w.req[f.site]!)
    out.trafficShareBefore = ratio(moved, req + moved)
  }
  // the window holding the failure and the hour after it
  let worst = -1
  out.hitWorst = 1
  for (let i = wT; i < Math.min(t.windows.length, wT + hour); i++) {
    const w = t.windows[i]!
    if (w.req[s]! === 0) continue
    const h = 1 - w.origin[s]! / w.req[s]!
    if (h < out.hitWorst) { out.hitWorst = h; worst = i }
  }
  if (worst < 0) { out.hitWorst = out.hitBefore; return out }
  out.dip = Math.max(0, out.hitBefore - out.hitWorst)
  const end = Math.min(t.windows.length, Math.floor(t.arrivalsEndMs / W))
  if (end > worst + 1) {
    const from = end - Math.max(1, Math.floor((end - worst) / 3))
    const settled = 1 - ratio(sum(from, end, w => w.origin[s]!), sum(from, end, w => w.req[s]!))
    out.hitSettled = settled
    for (let i = worst; i < end; i++) {
      const w = t.windows[i]!
      if (w.req[s]! > 0 && 1 - w.origin[s]! / w.req[s]! >= settled - 0.01) { out.recoveryMin = ((i + 1) * W - ev.atMs) / 60_000; break }
    }
  }
  const reqAfter = sum(wT, wT + hour, w => w.req[s]!)
  out.loadAfter = ratio(reqAfter, req)
  out.extraOriginBytes = Math.max(0, sum(wT, wT + hour, w => w.origin[s]!) - (1 - out.hitBefore) * reqAfter) * dep.chunkBytes
  return out
}

export function summarize(m: Model, t: Tally): ModelResult {
  const sites = m.dep.sites.map((site, s) => ({ id: site.id, ...siteFigures(m, t, s) }))
  const total = (k: keyof Figures) => sites.reduce((a, x) => a + x[k], 0)
  const req = total('requests')
  const cb = m.dep.chunkBytes
  return {
    sessions: m.sessions, reads: t.reads, simulatedHours: t.lastMs / 3_600_000, warmupMin: t.warmupMs / 60_000,
    overall: {
      requests: req, bytes: req * cb, byteHitRatio: 1 - ratio(total('originBytes') / cb, req), edgeHitRatio: ratio(sites.reduce((a, x) => a + x.edgeHitRatio * x.requests, 0), req),
      originBytes: total('originBytes'), peerBytes: total('peerBytes'),
      spread: Math.max(...sites.map(x => x.spread)), peakActiveSpread: Math.max(...sites.map(x => x.peakActiveSpread)),
      prefillBytes: t.prefillChunks * cb, unservedBytes: t.darkReads * cb,
    },
    sites,
    failures: t.failures.map(ev => failureFigures(m, t, ev)),
  }
}
