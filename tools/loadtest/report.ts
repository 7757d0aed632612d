import type { AbrFigures } from './abr-viewers.js'
import type { CacheFigures } from './edge-counters.js'
import { bin, esc, histogram, lineChart } from './svg.js'

/**
 * The load test's result, as JSON and as one self-contained HTML page (inline
 * SVG charts, inline CSS, no script, no external resource), so it opens from
 * a mail attachment on a machine with no network.
 */
export interface TimelinePoint {
  /** seconds since start */
  t: number
  /** MB/s (10^6 bytes) received since the point before: response bytes (http, headers included), body bytes (players); throughput.ts */
  mbps: number
  /** byte hit ratio at the edges in this interval, when known */
  hitRatio: number | null
  /** byte hit ratio at the edges since the start, when known */
  hitRatioSoFar?: number | null
  /** origin offload in this interval and since the start, when known (edge-counters.ts) */
  offload?: number | null
  offloadSoFar?: number | null
  rps?: number
  sessions?: number
}

export interface Percentiles {
  p50: number
  p90?: number
  p95?: number
  p99: number
  max: number
}

export interface LoadResult {
  mode: 'http' | 'players'
  scenario: string
  target: string
  startedAt: string
  durationS: number
  /** what the generator itself reaches against a trivial in-memory server */
  generatorCeilingMBps: number | null
  timeline: TimelinePoint[]
  http?: { requests: number; reqPerSec: number; mbps: number; latencyMs: Percentiles; latencySamplesMs: number[]; errorsByStatus: Record<string, number> }
  players?: {
    sessions: number
    failed: number
    startupMs: Percentiles & { samples: number[] }
    rebufferRatio: number
    stallsPerSession: number
    stallSamplesMs: number[]
    /** bytes played */
    bytes: number
    /** body bytes the players received, buffered-ahead bytes included */
    bytesReceived: number
    /** of those, bytes read from the origin URL of /v1/play (the client's last resort) */
    bytesFromOrigin?: number
    /** sessions the run's end cut before they reached their start-up threshold: in no QoE figure */
    cutBeforeStart?: number
    /** HTTP requests the players sent (probes, ranges, position reports) */
    requests?: number
    /** sessions by title */
    plays?: Record<string, number>
    /** the viewers' seeks, and their waits for the buffer (not in the rebuffer ratio or the stalls) */
    seeks?: number
    seekWaitMs?: Percentiles
    /** adaptive viewers (issue 15): their links, time and bytes per rung, switches, average bitrate; times in scenario seconds */
    abr?: AbrFigures
    /** the failed sessions' distinct errors (up to 10) */
    errors?: string[]
  }
  cache?: CacheFigures
  /** why there are no cache figures, when /metrics could not be read */
  metricsError?: string
}

/** What the generator received per second over the run. */
export function runMBps(r: LoadResult): number | null {
  if (r.http) return r.http.mbps
  if (r.players) return r.players.bytesReceived / 1e6 / Math.max(0.001, r.durationS)
  return null
}

/** The share of the players' bytes read from the origin URL rather than an edge; null without players or bytes. */
export function originShare(r: LoadResult): number | null {
  const p = r.players
  return p && p.bytesReceived > 0 ? (p.bytesFromOrigin ?? 0) / p.bytesReceived : null
}

/** A warning when the run came within 80 % of the generator's own ceiling: its figures may be the generator's. */
export function ceilingWarning(r: LoadResult): string | null {
  const mbps = runMBps(r)
  if (r.generatorCeilingMBps === null || mbps === null || mbps < 0.8 * r.generatorCeilingMBps) return null
  return `this run received ${mbps.toFixed(1)} MB/s, ${(100 * mbps / r.generatorCeilingMBps).toFixed(0)} % of the generator's ceiling ` +
    `(${r.generatorCeilingMBps.toFixed(1)} MB/s): its figures may show the generator's limit, not the servers'`
}

/** A latency in ms to a tenth (autocannon's are floats with many digits), or - when not measured. */
export function ms(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(1)
}

/** A share as a percentage with one decimal, or n/a. */
export function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)} %`
}

function row(k: string, v: string): string {
  return `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`
}

export function renderHtml(r: LoadResult): string {
  const rows: string[] = [row('mode', r.mode), row('scenario', r.scenario), row('target', r.target), row('started', r.startedAt),
    row('duration', `${r.durationS.toFixed(1)} s`),
    row('generator ceiling', r.generatorCeilingMBps === null ? 'not measured' : `${r.generatorCeilingMBps.toFixed(1)} MB/s`)]
  const warning = ceilingWarning(r)
  if (warning) rows.push(row('warning', warning))
  const charts: string[] = [
    lineChart('Throughput', 'seconds', 'MB/s', [{ name: 'MB/s', color: '#3a6ea5', points: r.timeline.map(p => [p.t, p.mbps]) }]),
    lineChart('Byte hit ratio and origin offload at the edges', 'seconds', 'ratio', [
      { name: 'hit ratio each second', color: '#2e8b57', points: r.timeline.filter(p => p.hitRatio !== null).map(p => [p.t, p.hitRatio!]) },
      { name: 'hit ratio since start', color: '#555', points: r.timeline.filter(p => p.hitRatioSoFar != null).map(p => [p.t, p.hitRatioSoFar!]) },
      // a second in which the edges fetched more than they served (readahead, a cold start) has a negative offload: drawn at 0
      { name: 'offload each second', color: '#d9822b', points: r.timeline.filter(p => p.offload != null).map(p => [p.t, Math.max(0, p.offload!)]) },
      { name: 'offload since start', color: '#8b4513', points: r.timeline.filter(p => p.offloadSoFar != null).map(p => [p.t, Math.max(0, p.offloadSoFar!)]) }]),
  ]
  if (r.http) {
    const h = r.http
    rows.push(row('requests', `${h.requests} (${h.reqPerSec.toFixed(0)}/s)`), row('throughput', `${h.mbps.toFixed(1)} MB/s`),
      row('latency p50 / p90 / p99 / max', `${ms(h.latencyMs.p50)} / ${ms(h.latencyMs.p90)} / ${ms(h.latencyMs.p99)} / ${ms(h.latencyMs.max)} ms`),
      row('errors by status', Object.entries(h.errorsByStatus).map(([s, n]) => `${s}: ${n}`).join(', ') || 'none'))
    charts.push(histogram('Latency', 'ms', bin(h.latencySamplesMs)))
  }
  if (r.players) {
    const p = r.players
    rows.push(row('sessions (failed)', `${p.sessions} (${p.failed})`),
      row('sessions cut before start-up by the run\'s end', String(p.cutBeforeStart ?? 0)),
      row('start-up p50 / p95 / p99', `${p.startupMs.p50.toFixed(0)} / ${(p.startupMs.p95 ?? 0).toFixed(0)} / ${p.startupMs.p99.toFixed(0)} ms`),
      row('rebuffer ratio', pct(p.rebufferRatio)), row('stalls per session', p.stallsPerSession.toFixed(2)),
      row('seeks, wait p50 / p95', `${p.seeks ?? 0}, ${(p.seekWaitMs?.p50 ?? 0).toFixed(0)} / ${(p.seekWaitMs?.p95 ?? 0).toFixed(0)} ms`),
      row('bytes played / received', `${(p.bytes / 1e6).toFixed(1)} MB / ${(p.bytesReceived / 1e6).toFixed(1)} MB`),
      row('bytes from origin', pct(originShare(r))))
    if (p.abr) {
      const a = p.abr
      rows.push(row('adaptive viewers, by link', `${a.viewers}: ${Object.entries(a.links).map(([bps, n]) => `${n} at ${(Number(bps) / 1e6).toFixed(1)} Mb/s`).join(', ')}`),
        row('average bitrate played', `${(a.averageBps / 1e6).toFixed(2)} Mb/s`),
        row('rung switches per viewer / per minute', `${a.rungSwitchesPerViewer.toFixed(2)} / ${a.rungSwitchesPerMinute.toFixed(2)}`),
        row('server switches (trial segments), abandoned downloads', `${a.serverSwitches} (${a.trials}), ${a.abandons}`),
        row('QoE per segment (linear, as MPC and Pensieve: Mb/s − |change| − 4.3 × stall s)', a.qoe.toFixed(2)),
        ...a.rungs.map(g => row(`rung ${g.name} (${(g.bandwidth / 1e6).toFixed(2)} Mb/s)`, `${pct(g.share)} of the time, ${(g.bytes / 1e6).toFixed(1)} MB`)))
      charts.push(histogram(`Time share per rung, % (${a.rungs.map((g, i) => `${i} = ${g.name}`).join(', ')})`, 'rung',
        a.rungs.map((g, i) => ({ from: i, to: i + 1, count: 100 * g.share })), '#2e8b57'))
    }
    charts.push(histogram('Start-up delay', 'ms', bin(p.startupMs.samples), '#8a5a9e'))
    charts.push(histogram('Stall durations', 'ms', bin(p.stallSamplesMs), '#c0504d'))
  }
  if (r.metricsError) rows.push(row('cache figures', r.metricsError))
  if (r.cache) rows.push(row('byte hit ratio (bytes from an edge\'s RAM or disk)', pct(r.cache.byteHitRatio)),
    row('origin offload (1 − bytes from the origin / bytes served)', pct(r.cache.originOffload)),
    row('edge bytes served / upstream', `${(r.cache.edgeBytesServed / 1e6).toFixed(1)} MB / ${(r.cache.upstreamBytes / 1e6).toFixed(1)} MB`),
    row('router bytes served', r.cache.routerBytesServed === null ? 'not read' : `${(r.cache.routerBytesServed / 1e6).toFixed(1)} MB`))
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reelcdn load test: ${esc(r.scenario)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em;color:#222}th{text-align:left;padding-right:2em;font-weight:normal;color:#555}
td{font-variant-numeric:tabular-nums}svg{display:block;margin:1.5em 0;border:1px solid #eee}</style></head>
<body><h1>reelcdn load test</h1><table>${rows.join('')}</table>${charts.join('\n')}</body></html>
`
}
