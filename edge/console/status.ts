import type { Registry } from 'prom-client'
import type { Config } from '../../lib/config/config.js'
import { fig, metricValues, sumOf, type ConsoleStatus, type Section } from '../../lib/console/status.js'
import { intervals, SampleRing } from '../../lib/console/samples.js'
import { FILL_FAILURE_REASONS, HIT_RESULTS } from '../../lib/metrics.js'
import type { ChunkCache } from '../tiers/cache.js'
import type { Coalescer } from '../fill/coalesce.js'
import type { PrefillRunner } from '../prefill/prefill.js'
import type { DemandRecorder, EdgeReporter } from '../prefill/demand.js'
import { parseFillWindow } from '../prefill/fill-window.js'

/**
 * The edge's status console figures (`GET /status.json`, docs/console.md).
 * Traffic figures come from the edge's own registry (the counters /metrics
 * prints: reelcdn_edge_bytes_served_total, reelcdn_edge_upstream_bytes_total,
 * reelcdn_edge_upstream_requests_total, ...); the last hour's byte hit ratio
 * and throughput are differences of those counters sampled every 10 s into a
 * bounded ring (lib/console/samples.ts). Tiers, fills, prefill and threads
 * are read from the objects that own them, as the gauges are, so a reload
 * (lib/reload.ts) shows at once.
 *
 * Upstream health is judged from the upstream request counters over the last
 * minute of samples: `ok` if any request succeeded (or none failed), `failing`
 * if requests failed and none succeeded, `idle` if there were none.
 */
export interface EdgeConsoleDeps {
  config: Readonly<Config>
  registry: Registry
  cache: ChunkCache
  fills: Coalescer
  prefill: PrefillRunner
  demand: DemandRecorder
  reporter: () => EdgeReporter | undefined
  /** the id the edge registers under; connections open now; serve threads running */
  id: () => string
  /** this edge's site (edge.site, '' for none) and its members as the router's last heartbeat answer listed them (edge/site/site-view.ts) */
  site: () => { name: string; members: number }
  /** the router's URL as now configured (edge.upstream: a reload may change it) */
  upstream: () => string
  active: () => number
  threads: () => number
}

type Key = 'hit' | 'served' | 'upstream' | 'upOk' | 'upFailed'
const FAILED = ['error', 'timeout']

export class EdgeConsole {
  readonly ring: SampleRing<Key>

  constructor(private readonly d: EdgeConsoleDeps, everyMs = 10_000) {
    this.ring = new SampleRing<Key>(() => this.counters(), 360, everyMs)
  }

  private async counters(): Promise<Record<Key, number>> {
    const served = await metricValues(this.d.registry, 'reelcdn_edge_bytes_served_total')
    const up = await metricValues(this.d.registry, 'reelcdn_edge_upstream_requests_total')
    return {
      hit: sumOf(served, { result: HIT_RESULTS }), served: sumOf(served),
      upstream: sumOf(await metricValues(this.d.registry, 'reelcdn_edge_upstream_bytes_total')),
      upOk: sumOf(up, { result: 'ok' }), upFailed: sumOf(up, { result: FAILED }),
    }
  }

  async status(now = Date.now()): Promise<ConsoleStatus> {
    const { config, cache, fills, prefill, demand, registry } = this.d
    const cfg = config.edge
    const samples = await this.ring.withNow(now)
    const c = samples[samples.length - 1]!.v
    const minute = samples.filter(s => s.at >= now - 60_000)
    const first = minute[0] ?? samples[0]!
    const okRecent = c.upOk - first.v.upOk
    const failedRecent = c.upFailed - first.v.upFailed
    const health = okRecent > 0 || (failedRecent === 0 && c.upOk > 0) ? 'ok' : failedRecent > 0 ? 'failing' : 'idle'
    const threadReqs = await metricValues(registry, 'reelcdn_edge_serve_thread_requests_total')
    // not a withdrawn fill (its every player left before it started: edge/fill/coalesce.ts `leave`), which failed no one
    const fillFailures = sumOf(await metricValues(registry, 'reelcdn_edge_fill_failures_total'), { reason: FILL_FAILURE_REASONS })
    const rep = this.d.reporter()
    const tiers = (['ram', 'disk'] as const).map(t => {
      const s = cache[t].stats()
      return { tier: t, bytes: s.bytes, capacity: s.capacity, fill: s.capacity > 0 ? s.bytes / s.capacity : null, chunks: s.entries }
    })
    const p = prefill.progress
    const settings = prefill.settings
    const window = parseFillWindow(settings.window)
    const sections: Section[] = [
      { key: 'traffic', title: 'Traffic', figures: [
        fig('byteHitRatio', 'Byte hit ratio (since start)', c.served > 0 ? c.hit / c.served : null, 'ratio'),
        fig('bytesServed', 'Bytes served', c.served, 'bytes'),
        fig('upstreamBytes', 'Bytes from upstream', c.upstream, 'bytes'),
        fig('originOffload', 'Origin offload', c.served > 0 ? 1 - c.upstream / c.served : null, 'ratio'),
        fig('connections', 'Connections open', this.d.active()),
      ], series: [
        { key: 'hitRatio', label: 'Byte hit ratio, last hour', unit: 'ratio', points: intervals(samples, d => (d.served > 0 ? d.hit / d.served : null)) },
        { key: 'throughput', label: 'Throughput to players', unit: 'bytesPerSec', points: intervals(samples, (d, s) => d.served / s) },
        { key: 'upstreamRate', label: 'From upstream', unit: 'bytesPerSec', points: intervals(samples, (d, s) => d.upstream / s) },
      ] },
      { key: 'tiers', title: 'Tiers and fills', figures: [
        fig('fillsInFlight', 'Fills in flight', fills.size),
        fig('maxFills', 'Fill slots', cfg.maxFills),
        fig('diskWritesPending', 'Disk writes queued', cache.disk.pendingWrites),
        fig('fillFailures', 'Fill failures (since start)', fillFailures),
      ], tables: [{ key: 'tiers', columns: [
        { key: 'tier', label: 'Tier', unit: 'text' }, { key: 'bytes', label: 'Used', unit: 'bytes' },
        { key: 'capacity', label: 'Size', unit: 'bytes' }, { key: 'fill', label: 'Full', unit: 'ratio' }, { key: 'chunks', label: 'Chunks', unit: 'count' },
      ], rows: tiers }] },
      { key: 'titles', title: 'Top titles', tables: [{ key: 'topTitles', empty: 'no plays yet',
        columns: [{ key: 'contentId', label: 'Title', unit: 'text' }, { key: 'plays', label: 'Plays', unit: 'count' }], rows: demand.top(10) }] },
      { key: 'prefill', title: 'Prefill', figures: [
        fig('state', 'State', prefill.state, 'state'),
        fig('window', 'Window', window.spec, 'text'),
        fig('inWindow', 'In the window now', window.contains(new Date(now)), 'text'),
        fig('windowBytes', 'Fetched this window', prefill.bytesThisWindow, 'bytes'),
        fig('budgetBytes', 'Budget per window', settings.budgetBytes, 'bytes'),
        fig('plannedChunks', 'Pass: planned chunks', p?.plannedChunks ?? null),
        fig('doneChunks', 'Pass: chunks done', p?.doneChunks ?? null),
        fig('fetchedBytes', 'Pass: fetched', p?.fetchedBytes ?? null, 'bytes'),
        fig('result', 'Pass: result', p?.result ?? null, 'text'),
      ] },
      { key: 'upstream', title: 'Upstream', figures: [
        fig('health', 'Health (last minute)', health, 'state'),
        fig('url', 'Router', this.d.upstream(), 'text'),
        fig('site', 'Site', this.d.site().name || null, 'text'),
        fig('siteMembers', 'Edges in the site', this.d.site().members),
        fig('requestsOk', 'Requests ok', c.upOk),
        fig('requestsFailed', 'Requests failed or timed out', c.upFailed),
        fig('heartbeatsOk', 'Heartbeats ok', rep?.heartbeats.ok ?? null),
        fig('heartbeatsFailed', 'Heartbeats failed', rep?.heartbeats.failed ?? null),
      ] },
      { key: 'threads', title: 'Serve threads', figures: [
        fig('configured', 'Configured', cfg.serveThreads),
        fig('alive', 'Running', this.d.threads()),
        fig('served', 'Requests served by threads', sumOf(threadReqs, { outcome: 'served' })),
        fig('relayed', 'Relayed to the main thread', sumOf(threadReqs, { outcome: 'relayed' })),
      ] },
    ]
    return { service: 'edge', id: this.d.id(), at: new Date(now).toISOString(), refreshMs: this.ring.everyMs, sections }
  }
}
